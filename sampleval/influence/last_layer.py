"""Last-layer quantities: penultimate features, output gradients and output Hessians of the
final ``nn.Linear``, and the damped last-layer Hessian solve.

With penultimate features ``phi~_i = [phi_i, 1]`` and output gradients ``delta_i = dL_i/dz_i``
the per-sample gradient of the last layer ``[W | b]`` is the outer product
``delta_i phi~_i^T``; its Hessian is ``mean_i H_z,i (x) phi~_i phi~_i^T`` with ``H_z,i`` the
loss's Hessian with respect to the logits.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from sampleval.training.models import last_linear
from sampleval.influence.core import batches, output_hessians
from sampleval.influence.solvers import conjugate_gradient, psd_projection


class LastLayer:
    """Per-sample quantities of the final ``nn.Linear`` (logits ``z = W phi + b``).

    ``features``: ``phi~ = [phi, 1]`` (n, D+1); ``out_grads``: ``dL/dz`` (n, K); with
    ``hessians=True`` also ``out_hessians``: ``d2L/dz2`` (n, K, K). The per-sample
    last-layer gradient is ``outer(dL/dz, phi~)``, i.e. ``[dL/dW | dL/db]``."""

    def __init__(self, features: torch.Tensor, out_grads: torch.Tensor, logits: torch.Tensor, out_hessians: torch.Tensor | None):
        self.features = features
        self.out_grads = out_grads
        self.logits = logits
        self.out_hessians = out_hessians

    def summed_gradient(self, mask: torch.Tensor | None = None) -> torch.Tensor:
        d, f = self.out_grads, self.features
        if mask is not None:
            d, f = d[mask], f[mask]
        return d.T @ f  # (K, D+1)

    def dots(self, direction: torch.Tensor) -> torch.Tensor:
        """``grad_lastlayer L_i . direction`` for every sample (direction is (K, D+1))."""
        direction = direction.to(torch.float64)
        return ((self.out_grads.double() @ direction) * self.features.double()).sum(1)

    def psd(self) -> "LastLayer":
        """The same with every output Hessian's negative eigenvalues clipped to 0."""
        return LastLayer(self.features, self.out_grads, self.logits, psd_projection(self.out_hessians))

    def grad_sq_norms(self) -> torch.Tensor:
        return self.out_grads.pow(2).sum(1) * self.features.pow(2).sum(1)


def last_layer_quantities(
    model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256, hessians: bool = False
) -> LastLayer:
    """Penultimate features, output gradients (and output Hessians) at the model's current weights."""
    layer = last_linear(model)
    captured: dict = {}

    def hook(module, inputs, output):
        captured["phi"] = inputs[0].detach()
        captured["z"] = output.detach()

    handle = layer.register_forward_hook(hook)
    feats, grads, logits, hess = [], [], [], []

    try:
        model.eval()
        with torch.no_grad():
            for xb, yb in batches(x, y, batch_size):
                out = model(xb)
                phi, z = captured["phi"], captured["z"]
                if phi.dim() != 2 or out.shape != z.shape or not torch.equal(out, z):
                    raise ValueError(
                        f"{type(model).__name__}: the final nn.Linear's output is not the model output; "
                        "last-layer estimators need logits = last_linear(features)"
                    )
                with torch.enable_grad():
                    zz = z.clone().requires_grad_(True)
                    (g,) = torch.autograd.grad(loss_fn(zz, yb, reduction="sum"), zz)
                ones = torch.ones(len(phi), 1, dtype=phi.dtype)
                feats.append(torch.cat([phi, ones], 1) if layer.bias is not None else phi)
                grads.append(g.detach())
                logits.append(z)
                if hessians:
                    hess.append(output_hessians(loss_fn, z, yb))
    finally:
        handle.remove()
    return LastLayer(torch.cat(feats), torch.cat(grads), torch.cat(logits), torch.cat(hess) if hessians else None)


def last_layer_hessian(q: LastLayer, damping: float = 0.0) -> torch.Tensor:
    """Dense Hessian of the mean loss w.r.t. ``vec([W | b])`` (row-major (K, D+1)):
    ``mean_i H_z,i (x) phi~_i phi~_i^T`` plus ``damping * I``, in float64."""
    n, k = q.out_grads.shape
    d = q.features.shape[1]
    f, h = q.features.double(), q.out_hessians.double()
    big = torch.empty(k, d, k, d, dtype=torch.float64)
    for a in range(k):
        for b in range(a, k):
            block = (f * h[:, a, b, None]).T @ f / n
            big[a, :, b, :] = block
            if b != a:
                big[b, :, a, :] = block.T
    big = big.reshape(k * d, k * d)
    big.diagonal().add_(damping)
    return big


def last_layer_hvp(q: LastLayer, damping: float = 0.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """Matrix-free ``v -> (H_last + damping I) v`` on flat (K*(D+1)) vectors, float64."""
    n, k = q.out_grads.shape
    f, h = q.features.double(), q.out_hessians.double()

    def apply(v: torch.Tensor) -> torch.Tensor:
        vm = v.reshape(k, -1)
        u = f @ vm.T  # (n, K): V phi~_i
        w = torch.einsum("iab,ib->ia", h, u)
        return (w.T @ f / n).reshape(-1) + damping * v

    return apply


def _dense_solve(q: LastLayer, g: torch.Tensor, damping: float) -> tuple[torch.Tensor, str] | None:
    """Cholesky solve of the dense damped last-layer Hessian; None if it is not positive definite."""
    try:
        return torch.cholesky_solve(g.reshape(-1, 1), torch.linalg.cholesky(last_layer_hessian(q, damping))), "cholesky"
    except RuntimeError:
        return None


def solve_last_layer(q: LastLayer, g: torch.Tensor, damping: float, max_dense: int = 12000, max_iter: int = 1000) -> tuple[torch.Tensor, dict]:
    """``(H_last + damping I)^-1 g`` for ``g`` of shape (K, D+1): dense Cholesky when the
    layer has at most ``max_dense`` parameters, else CG on the matrix-free product.

    If the damped exact Hessian is not positive definite (an indefinite output Hessian,
    e.g. focal loss), the solve is redone with the output Hessians' negative eigenvalues
    clipped to 0 (:meth:`LastLayer.psd`: positive semi-definite by construction); the
    diagnostics say so (``curvature``, ``fallback``)."""
    g = g.double()
    p = g.numel()
    info: dict = {"parameters": p, "damping": float(damping), "curvature": "exact", "fallback": None}
    if p <= max_dense:
        solved = _dense_solve(q, g, damping)
        if solved is None:
            info.update(curvature="gauss_newton_psd", fallback="the damped exact last-layer Hessian is not positive definite")
            solved = _dense_solve(q.psd(), g, damping)
        if solved is None:  # damping 0 with a rank-deficient PSD matrix
            solved = torch.linalg.lstsq(last_layer_hessian(q.psd(), damping), g.reshape(-1, 1)).solution, "lstsq"
        s, info["solver"] = solved
        return s.reshape(g.shape), info
    s, cg_info = conjugate_gradient(last_layer_hvp(q, damping), g.reshape(-1), max_iter, 1e-10)
    if cg_info["negative_curvature"]:
        info.update(curvature="gauss_newton_psd", fallback=f"negative curvature after {cg_info['iterations']} CG iterations")
        s, cg_info = conjugate_gradient(last_layer_hvp(q.psd(), damping), g.reshape(-1), max_iter, 1e-10)
    return s.reshape(g.shape), {**info, "solver": "cg", **cg_info}
