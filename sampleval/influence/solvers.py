"""Linear solvers and flat-vector bookkeeping shared by the influence-function estimators."""
from __future__ import annotations

import math
from typing import Callable

import torch


class Flat:
    """Flatten a {name: tensor} dict into one vector and back."""

    def __init__(self, like: dict):
        self.names = list(like)
        self.shapes = [like[k].shape for k in self.names]
        self.numels = [like[k].numel() for k in self.names]

    def flat(self, d: dict) -> torch.Tensor:
        return torch.cat([d[k].reshape(-1) for k in self.names])

    def unflat(self, v: torch.Tensor) -> dict:
        out, offset = {}, 0
        for k, shape, n in zip(self.names, self.shapes, self.numels):
            out[k] = v[offset : offset + n].view(shape)
            offset += n
        return out


def conjugate_gradient(
    apply_a: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, max_iter: int, tol: float = 1e-6
) -> tuple[torch.Tensor, dict]:
    """Solve ``A x = b`` for symmetric positive definite ``A``; stops at ``|r| <= tol |b|``.

    Returns ``(x, info)`` with ``iterations``, ``relative_residual`` (recursive residual),
    ``converged`` and ``negative_curvature`` (``p.Ap <= 0`` met: ``A`` is not positive
    definite; the iterate so far is returned)."""
    x = torch.zeros_like(b)
    b_norm = float(b.norm())
    info = {"iterations": 0, "relative_residual": 0.0, "converged": True, "negative_curvature": False}
    if b_norm == 0:
        return x, info
    r = b.clone()
    p = r.clone()
    rs = float(r @ r)
    k = 0
    for k in range(1, max_iter + 1):
        ap = apply_a(p)
        pap = float(p @ ap)
        if not pap > 0:
            info["negative_curvature"] = True
            k -= 1
            break
        alpha = rs / pap
        x += alpha * p
        r -= alpha * ap
        rs_new = float(r @ r)
        if math.sqrt(rs_new) <= tol * b_norm:
            rs = rs_new
            break
        p = r + (rs_new / rs) * p
        rs = rs_new
    info["iterations"] = k
    info["relative_residual"] = math.sqrt(rs) / b_norm
    info["converged"] = info["relative_residual"] <= tol and not info["negative_curvature"]
    return x, info


def power_iteration(apply_a: Callable, dim_like: torch.Tensor, steps: int, gen: torch.Generator) -> float:
    v = torch.randn(dim_like.shape, generator=gen, dtype=dim_like.dtype)
    v /= v.norm()
    lam = 0.0
    for _ in range(steps):
        w = apply_a(v)
        lam = float(w.norm())
        if lam == 0:
            return 0.0
        v = w / lam
    return lam


def psd_projection(h: torch.Tensor) -> torch.Tensor:
    """The nearest positive semi-definite matrices (Frobenius norm) to a batch of symmetric
    (..., K, K) matrices: eigendecomposition with the negative eigenvalues set to 0."""
    sym = (h + h.transpose(-1, -2)) / 2
    w, v = torch.linalg.eigh(sym)
    return (v * w.clamp_min(0).unsqueeze(-2)) @ v.transpose(-1, -2)
