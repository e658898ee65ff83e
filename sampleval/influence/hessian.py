"""Influence functions (Koh & Liang, 2017) on the model selected on validation.

Score of training sample i (our sign: positive = helpful)::

    if_i = grad L_val . H^-1 . grad L(z_i)

where ``grad L_val`` is the gradient of the *summed* validation loss, ``L`` is the
training loss and ``H`` is the Hessian of the *mean* training loss plus
``ctx.damping * I``, all at ``ctx.final_state``. Up-weighting z_i by ``eps`` in the mean
training objective changes the summed validation loss by about ``-eps * if_i``;
leaving z_i out (``eps = -1/n``) changes it by about ``+if_i / n``. So a helpful sample
(positive score) is one whose removal raises the validation loss.

Every full-model estimator computes ``S = H^-1 grad L_val`` once and then scores all
training samples by forward-mode directional derivatives ``grad L(z_i) . S``
(:func:`~sampleval.influence.tracin.directional_derivatives`); no per-sample gradient is
ever materialised, except for the diagonal approximation's squared gradients.

Estimators:

- ``if_cg``: ``S`` by conjugate gradient on Hessian-vector products (double backward,
  which on CPU is faster than torch.func's forward-over-reverse ``jvp(grad)``).
  ``ctx.extra['hessian'] = 'gauss_newton'`` swaps the exact Hessian for the (positive
  semi-definite) generalised Gauss-Newton matrix, which is also the automatic fallback
  when the network's Hessian has negative curvature larger than the damping.
- ``if_lissa``: the stochastic LiSSA recursion (Agarwal et al.; as in Koh & Liang's code)
  on minibatch HVPs, for models too large for many full-data HVPs.
- ``if_diag``: ``H`` replaced by its empirical-Fisher diagonal ``mean_i grad L_i ** 2``
  (a Gauss-Newton-type diagonal; the exact Hessian diagonal needs one HVP per parameter).
- ``if_last_layer``: the exact Hessian of the final ``nn.Linear`` (weights and bias, the
  penultimate features held fixed), dense and inverted with damping; last-layer
  gradients only. ``if_last_layer_miscls`` uses only the misclassified validation
  samples' gradient, as the labelling-bias paper does with misclassified test samples.

Options read from ``ctx.extra`` (all optional):

- ``cg_tol`` (1e-6): CG stops at relative residual ``|r| / |b|`` below this.
- ``hessian`` (``exact``): ``exact`` or ``gauss_newton`` for ``if_cg``.
- ``on_negative_curvature`` (``gauss_newton``): what ``if_cg`` does when the damped
  exact Hessian is indefinite: redo the solve on the Gauss-Newton matrix, or ``stop``
  and keep the iterate reached (see :func:`inverse_hvp_cg`).
- ``hvp_samples`` (all): a seeded random subset of this many training samples defines
  ``H`` for ``if_cg`` (cheaper HVPs on large training sets).
- ``lissa_depth`` (1000), ``lissa_repeat`` (1), ``lissa_batch_size`` (``ctx.batch_size``):
  recursion steps, independent recursions averaged, minibatch per HVP.
- ``lissa_scale`` (auto): must exceed the largest eigenvalue of the minibatch
  ``H + damping``; auto is 1.5 x a 20-step power-iteration estimate on one minibatch
  (a divergence is detected and reported with the fix). The recursion truncated at
  ``depth`` steps solves ``(H + damping)`` only up to a factor
  ``(1 - damping / scale) ** depth`` on the flattest directions (extra regularisation).
- ``per_sample_batch`` (32): vmap batch for the squared gradients of ``if_diag``.
- ``last_layer_max_dense`` (12000): above this many last-layer parameters the
  last-layer estimators use CG on a matrix-free product instead of a dense Cholesky.
- ``diagnostics`` (absent): a dict; if given, solvers record their iterations,
  residuals or scales there under the estimator's name (they are always logged).
"""
from __future__ import annotations

import logging
import math
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, jacfwd, jacrev, jvp, vjp, vmap

from ..models import last_linear
from .tracin import _batches, _split_state, directional_derivatives, summed_gradient

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- helpers


class _Flat:
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


def _record(ctx, name: str, info: dict) -> None:
    log.info("%s: %s", name, ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()))
    diag = ctx.extra.get("diagnostics") if ctx is not None else None
    if isinstance(diag, dict):
        diag[name] = dict(info)


def _load_final(ctx) -> nn.Module:
    model = ctx.model
    model.load_state_dict(ctx.final_state)
    model.eval()  # BatchNorm running statistics and no dropout, as at scoring time
    return model


def batch_hvp(model: nn.Module, loss_fn: Callable, gauss_newton: bool = False) -> tuple[_Flat, Callable]:
    """``(flat, hvp)`` where ``hvp(v, xb, yb)`` is the Hessian (or generalised Gauss-Newton
    matrix) of the *summed* loss over the batch times ``v`` ({name: tensor} dicts), at
    the model's current weights. Built once, reused for every batch."""
    params, buffers = _split_state(model)
    flat = _Flat(params)
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    names = list(leaves)

    def summed_loss(p, xb, yb):
        return loss_fn(functional_call(model, {**p, **buffers}, (xb,)), yb, reduction="sum")

    def exact(v: dict, xb, yb) -> dict:
        # Reverse-over-reverse (double backward): on CPU about 3x faster than
        # torch.func's forward-over-reverse jvp(grad) for conv nets.
        with torch.enable_grad():
            loss = summed_loss(leaves, xb, yb)
            g = torch.autograd.grad(loss, [leaves[k] for k in names], create_graph=True, allow_unused=True, materialize_grads=True)
            dot = sum((gi * v[k]).sum() for gi, k in zip(g, names))
            if not dot.requires_grad:  # loss linear in every parameter: zero Hessian
                return {k: torch.zeros_like(v[k]) for k in names}
            hv = torch.autograd.grad(dot, [leaves[k] for k in names], allow_unused=True, materialize_grads=True)
        return {k: h.detach() for k, h in zip(names, hv)}

    def gauss_newton_product(v: dict, xb, yb) -> dict:
        # G v = J^T H_z J v: forward-mode J v, output-space Hessian product, reverse-mode J^T.
        def outputs(p):
            return functional_call(model, {**p, **buffers}, (xb,))

        z, jv = jvp(outputs, (params,), (v,))
        _, hz_jv = jvp(grad(lambda zz: loss_fn(zz, yb, reduction="sum")), (z.detach(),), (jv,))
        _, pullback = vjp(outputs, params)
        return {k: h.detach() for k, h in pullback(hz_jv.detach())[0].items()}

    return flat, gauss_newton_product if gauss_newton else exact


def hvp_operator(
    model: nn.Module,
    loss_fn: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    damping: float = 0.0,
    batch_size: int = 256,
    gauss_newton: bool = False,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v -> (H + damping I) v`` on flat vectors, with ``H`` the Hessian (or generalised
    Gauss-Newton matrix) of the mean loss over ``(x, y)`` at the model's current weights."""
    n = len(x)
    if n == 0:
        raise ValueError("the Hessian needs at least one training sample")
    flat, hvp = batch_hvp(model, loss_fn, gauss_newton)

    def apply(v_flat: torch.Tensor) -> torch.Tensor:
        v = flat.unflat(v_flat)
        total = torch.zeros_like(v_flat)
        for xb, yb in _batches(x, y, batch_size):
            total += flat.flat(hvp(v, xb, yb))
        return total / n + damping * v_flat

    return apply


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


def _val_gradient(ctx, model: nn.Module) -> tuple[dict, _Flat]:
    g = summed_gradient(model, ctx.loss_fn, *ctx.val, batch_size=ctx.batch_size)
    return g, _Flat(g)


def _score(ctx, model: nn.Module, direction: dict) -> np.ndarray:
    # exact forward-mode AD: the fidelity stage compares these scores with retraining
    return directional_derivatives(model, ctx.loss_fn, direction, *ctx.train, batch_size=ctx.batch_size, method="jvp").numpy()


def _hvp_subset(ctx) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = ctx.train
    m = ctx.extra.get("hvp_samples")
    if m is None or int(m) >= len(x):
        return x, y
    gen = torch.Generator().manual_seed(int(ctx.seed))
    idx = torch.randperm(len(x), generator=gen)[: int(m)].sort().values
    return x[idx], y[idx]


# --------------------------------------------------------------------------- estimators


def inverse_hvp_cg(ctx, model: nn.Module, g_val: dict) -> tuple[dict, dict]:
    """``(H + damping I)^-1 g_val`` by CG; returns ``(S, info)``.

    If the damped exact Hessian shows negative curvature (common for a network at
    ``damping`` 0.01), CG is undefined; by default (``extra['on_negative_curvature'] =
    'gauss_newton'``) the solve is redone on the positive semi-definite Gauss-Newton
    matrix at the same damping, with a warning and ``info['fallback']`` set; ``'stop'``
    keeps the iterate reached before the negative curvature."""
    flat = _Flat(g_val)
    mode = ctx.extra.get("hessian", "exact")
    if mode not in ("exact", "gauss_newton"):
        raise ValueError(f"influence extra 'hessian' = {mode!r}; allowed: exact, gauss_newton")
    on_negative = ctx.extra.get("on_negative_curvature", "gauss_newton")
    if on_negative not in ("gauss_newton", "stop"):
        raise ValueError(f"influence extra 'on_negative_curvature' = {on_negative!r}; allowed: gauss_newton, stop")
    tol = float(ctx.extra.get("cg_tol", 1e-6))
    hx, hy = _hvp_subset(ctx)
    b = flat.flat(g_val)

    def solve(gauss_newton: bool):
        apply_a = hvp_operator(model, ctx.loss_fn, hx, hy, ctx.damping, ctx.batch_size, gauss_newton=gauss_newton)
        return conjugate_gradient(apply_a, b, int(ctx.cg_iterations), tol)

    s, info = solve(mode == "gauss_newton")
    info["hessian"] = mode
    if info["negative_curvature"]:
        if on_negative == "gauss_newton":
            log.warning(
                "if_cg: the damped Hessian is not positive definite (negative curvature after %d iterations, damping %g); "
                "solving with the Gauss-Newton matrix instead (raise influence.damping to keep the exact Hessian)",
                info["iterations"], ctx.damping,
            )
            s, info = solve(True)
            info["hessian"] = "gauss_newton"
            info["fallback"] = "negative curvature in the exact Hessian"
        else:
            log.warning(
                "if_cg: the damped Hessian is not positive definite (negative curvature after %d iterations); "
                "keeping that iterate: raise influence.damping or set extra hessian=gauss_newton",
                info["iterations"],
            )
    if not info["converged"] and not info["negative_curvature"]:
        log.warning(
            "if_cg: CG did not reach relative residual %.1e in %d iterations (%.2e); raise influence.cg_iterations or damping",
            tol, info["iterations"], info["relative_residual"],
        )
    return flat.unflat(s), info


def _influence_function(ctx, name: str, inverse_hvp: Callable) -> dict[str, np.ndarray]:
    """``g_i . S`` with ``S = inverse_hvp(g_val)`` on the final model, for every training sample."""
    model = _load_final(ctx)
    g_val, _ = _val_gradient(ctx, model)
    s, info = inverse_hvp(ctx, model, g_val)
    _record(ctx, name, info)
    return {name: _score(ctx, model, s)}


def estimate_if_cg(ctx) -> dict[str, np.ndarray]:
    """Registry entry: influence functions with ``H^-1 g_val`` by conjugate gradient."""
    return _influence_function(ctx, "if_cg", inverse_hvp_cg)


def _power_iteration(apply_a: Callable, dim_like: torch.Tensor, steps: int, gen: torch.Generator) -> float:
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


def inverse_hvp_lissa(ctx, model: nn.Module, g_val: dict) -> tuple[dict, dict]:
    """LiSSA: ``h_j = v + h_{j-1} - (H_batch + damping) h_{j-1} / scale``; then
    ``(H + damping)^-1 v ~ h_depth / scale``, averaged over ``lissa_repeat`` runs."""
    flat = _Flat(g_val)
    v = flat.flat(g_val)
    x, y = ctx.train
    n = len(x)
    depth = int(ctx.extra.get("lissa_depth", 1000))
    repeat = int(ctx.extra.get("lissa_repeat", 1))
    bs = min(int(ctx.extra.get("lissa_batch_size", ctx.batch_size)), n)
    damping = float(ctx.damping)
    gen = torch.Generator().manual_seed(int(ctx.seed))
    scale = ctx.extra.get("lissa_scale")
    if scale is None:
        sub = torch.randperm(n, generator=gen)[:bs]  # a minibatch like those of the recursion
        top = _power_iteration(hvp_operator(model, ctx.loss_fn, x[sub], y[sub], damping, ctx.batch_size), v, 20, gen)
        scale = 1.5 * top
    scale = float(scale)
    if not scale > 0:
        raise ValueError(f"LiSSA scale must be positive, got {scale}")
    v_norm = float(v.norm())
    _, hvp = batch_hvp(model, ctx.loss_fn)
    estimate = torch.zeros_like(v)
    for rep in range(repeat):
        h = v.clone()
        for _ in range(depth):
            idx = torch.randint(0, n, (bs,), generator=gen)
            hv = flat.flat(hvp(flat.unflat(h), x[idx], y[idx])) / bs + damping * h
            h = v + h - hv / scale
            h_norm = float(h.norm())
            if not math.isfinite(h_norm) or h_norm > 1e8 * max(v_norm, 1e-30):
                raise RuntimeError(
                    f"LiSSA diverged (|h| = {h_norm:.3g}); the damped Hessian has eigenvalues outside (0, scale = {scale:.3g}): "
                    "raise influence.damping or extra lissa_scale"
                )
        estimate += h / scale
    estimate /= repeat
    info = {"depth": depth, "repeat": repeat, "batch_size": bs, "scale": scale}
    return flat.unflat(estimate), info


def estimate_if_lissa(ctx) -> dict[str, np.ndarray]:
    """Registry entry: influence functions with ``H^-1 g_val`` by LiSSA (stochastic, seeded)."""
    return _influence_function(ctx, "if_lissa", inverse_hvp_lissa)


def fisher_diagonal(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, batch_size: int = 32) -> dict:
    """Empirical-Fisher diagonal ``mean_i (grad L_i) ** 2`` per parameter (vmap over grad)."""
    params, buffers = _split_state(model)

    def one_loss(p, xi, yi):
        return loss_fn(functional_call(model, {**p, **buffers}, (xi[None],)), yi[None], reduction="sum")

    per_sample = vmap(grad(one_loss), in_dims=(None, 0, 0))
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    for xb, yb in _batches(x, y, batch_size):
        g = per_sample(params, xb, yb)
        for k in total:
            total[k] += g[k].detach().pow(2).sum(0)
    return {k: v / max(len(x), 1) for k, v in total.items()}


def estimate_if_diag(ctx) -> dict[str, np.ndarray]:
    """Registry entry: influence functions with the Hessian replaced by its diagonal
    empirical-Fisher approximation (plus damping)."""
    model = _load_final(ctx)
    g_val, _ = _val_gradient(ctx, model)
    diag = fisher_diagonal(model, ctx.loss_fn, *ctx.train, batch_size=int(ctx.extra.get("per_sample_batch", 32)))
    if ctx.damping <= 0:
        zero = sum(int((d == 0).sum()) for d in diag.values())
        if zero:
            raise ValueError(f"if_diag: {zero} parameters have zero Fisher diagonal and damping is 0; set influence.damping > 0")
    s = {k: g_val[k] / (diag[k] + ctx.damping) for k in g_val}
    _record(ctx, "if_diag", {"min_diag": float(min(d.min() for d in diag.values())), "max_diag": float(max(d.max() for d in diag.values()))})
    return {"if_diag": _score(ctx, model, s)}


# --------------------------------------------------------------------------- last layer


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

    def one_loss(zi, yi):
        return loss_fn(zi[None], yi[None], reduction="sum")

    hess_fn = vmap(jacfwd(jacrev(one_loss)))
    try:
        model.eval()
        with torch.no_grad():
            for xb, yb in _batches(x, y, batch_size):
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
                    hess.append(hess_fn(z, yb).detach())
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


def solve_last_layer(q: LastLayer, g: torch.Tensor, damping: float, max_dense: int = 12000, max_iter: int = 1000) -> tuple[torch.Tensor, dict]:
    """``(H_last + damping I)^-1 g`` for ``g`` of shape (K, D+1): dense Cholesky when the
    layer has at most ``max_dense`` parameters, else CG on the matrix-free product."""
    g = g.double()
    p = g.numel()
    if p <= max_dense:
        h = last_layer_hessian(q, damping)
        try:
            s = torch.cholesky_solve(g.reshape(-1, 1), torch.linalg.cholesky(h))
            method = "cholesky"
        except RuntimeError:  # not positive definite (damping 0 with a rank-deficient Hessian)
            s = torch.linalg.lstsq(h, g.reshape(-1, 1)).solution
            method = "lstsq"
        return s.reshape(g.shape), {"parameters": p, "solver": method}
    s, info = conjugate_gradient(last_layer_hvp(q, damping), g.reshape(-1), max_iter, 1e-10)
    return s.reshape(g.shape), {"parameters": p, "solver": "cg", **info}


def misclassified(logits: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """Boolean mask of misclassified samples: wrong arg-max (multi-class), or any label
    wrong at probability 0.5 (multi-label)."""
    if task == "multilabel":
        return ((logits > 0).to(y.dtype) != (y > 0.5).to(y.dtype)).any(1)
    return logits.argmax(1) != y


def _if_last_layer(ctx, only_misclassified: bool) -> np.ndarray:
    model = _load_final(ctx)
    train_q = last_layer_quantities(model, ctx.loss_fn, *ctx.train, batch_size=ctx.batch_size, hessians=True)
    val_q = last_layer_quantities(model, ctx.loss_fn, *ctx.val, batch_size=ctx.batch_size)
    mask = misclassified(val_q.logits, ctx.val[1], ctx.task) if only_misclassified else None
    name = "if_last_layer_miscls" if only_misclassified else "if_last_layer"
    if mask is not None and not bool(mask.any()):
        log.warning("%s: no misclassified validation sample; every score is 0", name)
        return np.zeros(len(ctx.train[0]))
    g = val_q.summed_gradient(mask).double()
    s, info = solve_last_layer(train_q, g, float(ctx.damping), int(ctx.extra.get("last_layer_max_dense", 12000)))
    if mask is not None:
        info["misclassified_val"] = int(mask.sum())
    _record(ctx, name, info)
    return train_q.dots(s).numpy()


def estimate_if_last_layer(ctx) -> dict[str, np.ndarray]:
    """Registry entry: exact damped last-layer Hessian, summed validation gradient."""
    return {"if_last_layer": _if_last_layer(ctx, only_misclassified=False)}


def estimate_if_last_layer_miscls(ctx) -> dict[str, np.ndarray]:
    """Registry entry: as ``if_last_layer`` but with the gradient summed over the
    misclassified validation samples only."""
    return {"if_last_layer_miscls": _if_last_layer(ctx, only_misclassified=True)}
