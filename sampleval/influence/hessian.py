"""Influence functions (Koh & Liang, 2017) on the model selected on validation.

Score of training sample i (our sign: positive = helpful)::

    if_i = grad L_val . H^-1 . grad L(z_i)

where ``grad L_val`` is the gradient of the *summed* validation loss, ``L`` is the
training loss and ``H`` is the curvature of the *mean* training loss plus
``ctx.damping * I``, all at ``ctx.final_state``. Up-weighting z_i by ``eps`` in the mean
training objective changes the summed validation loss by about ``-eps * if_i``;
leaving z_i out (``eps = -1/n``) changes it by about ``+if_i / n``. So a helpful sample
(positive score) is one whose removal raises the validation loss.

Every full-model estimator computes ``S = H^-1 grad L_val`` once and then scores all
training samples by forward-mode directional derivatives ``grad L(z_i) . S``
(:func:`~sampleval.influence.core.directional_derivatives`); no per-sample gradient is
ever materialised, except for the diagonal approximation's squared gradients.

Curvature (``influence.options.if_cg.curvature``, also for ``if_lissa``):

- ``exact``: the network's Hessian (double backward). A network's Hessian is often
  indefinite; then CG meets negative curvature and is undefined. By default
  (``on_negative_curvature: gauss_newton``) the solve is redone on the Gauss-Newton
  curvature below, and the diagnostics say so (``curvature``, ``fallback``).
- ``gauss_newton``: ``J^T H_z+ J``, the generalised Gauss-Newton matrix with every
  sample's output Hessian ``H_z = d2L/dz2`` replaced by its positive semi-definite part
  (negative eigenvalues clipped to 0). Positive semi-definite by construction for any
  loss. For cross-entropy and BCE ``H_z`` is already PSD and this is the plain
  Gauss-Newton matrix; for focal loss (gamma 2) ``H_z`` is often indefinite and the
  plain Gauss-Newton matrix is *not* PSD, which is why it is clipped.

Estimators: ``if_cg`` (conjugate gradient on curvature-vector products), ``if_lissa``
(the stochastic LiSSA recursion on minibatch products, for large models), ``if_diag``
(``H`` replaced by its empirical-Fisher diagonal ``mean_i grad L_i ** 2``, PSD).
Their options are the dataclasses in :mod:`sampleval.influence.registry`; each writes its diagnostics
(solver, iterations, residual, curvature, fallback, damping) with :func:`.core.record`.
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, jvp, vjp, vmap

from sampleval.influence.core import batches, directional_derivatives, load_final, output_hessians, record, split_state, summed_gradient
from sampleval.influence.solvers import Flat, conjugate_gradient, power_iteration, psd_projection

log = logging.getLogger(__name__)

CURVATURES = {"exact": "exact", "gauss_newton": "gauss_newton_psd"}  # option -> name in the diagnostics


def batch_hvp(model: nn.Module, loss_fn: Callable, gauss_newton: bool = False) -> tuple[Flat, Callable]:
    """``(flat, hvp)`` where ``hvp(v, xb, yb)`` is the Hessian (or the PSD Gauss-Newton
    matrix ``J^T H_z+ J``) of the *summed* loss over the batch times ``v`` ({name: tensor}
    dicts), at the model's current weights. Built once, reused for every batch."""
    params, buffers = split_state(model)
    flat = Flat(params)
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

    def gauss_newton_product(v: dict, xb, yb, h_plus: torch.Tensor | None = None) -> dict:
        # G v = J^T H_z+ J v: forward-mode J v, the clipped output Hessians (given, or computed
        # here at the batch's logits), reverse-mode J^T.
        def outputs(p):
            return functional_call(model, {**p, **buffers}, (xb,))

        z, jv = jvp(outputs, (params,), (v,))
        if h_plus is None:
            h_plus = psd_projection(output_hessians(loss_fn, z, yb))
        hz_jv = torch.einsum("iab,ib->ia", h_plus, jv.detach())
        _, pullback = vjp(outputs, params)
        return {k: h.detach() for k, h in pullback(hz_jv)[0].items()}

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
    """``v -> (H + damping I) v`` on flat vectors, with ``H`` the Hessian (or the PSD
    Gauss-Newton matrix) of the mean loss over ``(x, y)`` at the model's current weights."""
    n = len(x)
    if n == 0:
        raise ValueError("the Hessian needs at least one training sample")
    flat, hvp = batch_hvp(model, loss_fn, gauss_newton)
    h_plus: list[torch.Tensor] = []  # Gauss-Newton: each batch's clipped output Hessians, computed once

    def apply(v_flat: torch.Tensor) -> torch.Tensor:
        v = flat.unflat(v_flat)
        total = torch.zeros_like(v_flat)
        for i, (xb, yb) in enumerate(batches(x, y, batch_size)):
            if not gauss_newton:
                total += flat.flat(hvp(v, xb, yb))
                continue
            if i == len(h_plus):
                with torch.no_grad():
                    h_plus.append(psd_projection(output_hessians(loss_fn, model(xb), yb)))
            total += flat.flat(hvp(v, xb, yb, h_plus[i]))
        return total / n + damping * v_flat

    return apply


def indefinite_share(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> dict:
    """Where the plain Gauss-Newton matrix is not PSD: the share of samples whose output
    Hessian ``d2L/dz2`` has a negative eigenvalue (below ``-1e-10`` times its largest
    magnitude), and the clipped share of the curvature, ``sum |negative eigenvalues| /
    sum |eigenvalues|`` over all samples (what clipping removes)."""
    count, negative, total = 0, 0.0, 0.0
    with torch.no_grad():
        for xb, yb in batches(x, y, batch_size):
            h = output_hessians(loss_fn, model(xb), yb).double()
            w = torch.linalg.eigvalsh((h + h.transpose(-1, -2)) / 2)
            scale = w.abs().amax(-1).clamp_min(1e-300)
            count += int((w[:, 0] < -1e-10 * scale).sum())
            negative += float(w.clamp_max(0).abs().sum())
            total += float(w.abs().sum())
    return {"output_hessian_indefinite_share": count / max(len(x), 1), "output_hessian_clipped_share": negative / total if total else 0.0}


def _val_gradient(ctx, model: nn.Module) -> dict:
    return summed_gradient(model, ctx.loss_fn, *ctx.val, batch_size=ctx.batch_size)


def _score(ctx, model: nn.Module, direction: dict) -> np.ndarray:
    # exact forward-mode AD: the fidelity stage compares these scores with retraining
    return directional_derivatives(model, ctx.loss_fn, direction, *ctx.train, batch_size=ctx.batch_size, method="jvp").numpy()


def _hvp_subset(ctx, m: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = ctx.train
    if m is None or int(m) >= len(x):
        return x, y
    gen = torch.Generator().manual_seed(int(ctx.seed))
    idx = torch.randperm(len(x), generator=gen)[: int(m)].sort().values
    return x[idx], y[idx]


def inverse_hvp_cg(ctx, model: nn.Module, g_val: dict) -> tuple[dict, dict]:
    """``(H + damping I)^-1 g_val`` by CG; returns ``(S, info)``.

    If the damped exact Hessian shows negative curvature (common for a network at
    ``damping`` 0.01), CG is undefined; by default (``on_negative_curvature:
    gauss_newton``) the solve is redone on the PSD Gauss-Newton matrix at the same damping,
    with a warning, ``info['fallback']`` and the failed attempt's iterations recorded;
    ``stop`` keeps the iterate reached before the negative curvature."""
    opts = ctx.options_of("if_cg")
    flat = Flat(g_val)
    hx, hy = _hvp_subset(ctx, opts.hvp_samples)
    b = flat.flat(g_val)

    def solve(curvature: str):
        apply_a = hvp_operator(model, ctx.loss_fn, hx, hy, ctx.damping, ctx.batch_size, gauss_newton=curvature == "gauss_newton")
        s, info = conjugate_gradient(apply_a, b, int(ctx.cg_iterations), float(opts.cg_tol))
        return s, {"solver": "cg", "curvature": CURVATURES[curvature], **info}

    s, info = solve(opts.curvature)
    info["fallback"] = None
    if info["negative_curvature"] and opts.on_negative_curvature == "gauss_newton":
        log.warning(
            "if_cg: the damped Hessian is not positive definite (negative curvature after %d iterations, damping %g); "
            "solving with the PSD Gauss-Newton matrix instead (recorded in the diagnostics)", info["iterations"], ctx.damping,
        )
        first = info
        s, info = solve("gauss_newton")
        info["fallback"] = f"negative curvature in the exact Hessian after {first['iterations']} CG iterations"
    elif info["negative_curvature"]:
        log.warning("if_cg: the damped Hessian is not positive definite (negative curvature after %d iterations); keeping that iterate", info["iterations"])
    if not info["converged"] and not info["negative_curvature"]:
        log.warning("if_cg: CG did not reach relative residual %.1e in %d iterations (%.2e); raise influence.cg_iterations or damping",
                    opts.cg_tol, info["iterations"], info["relative_residual"])
    if info["curvature"] == "gauss_newton_psd":
        info.update(indefinite_share(model, ctx.loss_fn, hx, hy, ctx.batch_size))
    info.update(tol=float(opts.cg_tol), max_iterations=int(ctx.cg_iterations), hvp_samples=len(hx))
    return flat.unflat(s), info


def _influence_function(ctx, name: str, inverse_hvp: Callable) -> dict[str, np.ndarray]:
    """``g_i . S`` with ``S = inverse_hvp(g_val)`` on the final model, for every training sample."""
    model = load_final(ctx)
    g_val = _val_gradient(ctx, model)
    s, info = inverse_hvp(ctx, model, g_val)
    record(ctx, name, {**info, "damping": float(ctx.damping), "model": _final(ctx)})
    return {name: _score(ctx, model, s)}


def _final(ctx) -> str:
    return f"final (epoch {ctx.final_epoch})" if ctx.final_epoch is not None else "final"


def estimate_if_cg(ctx) -> dict[str, np.ndarray]:
    """Registry entry: influence functions with ``H^-1 g_val`` by conjugate gradient."""
    return _influence_function(ctx, "if_cg", inverse_hvp_cg)


def inverse_hvp_lissa(ctx, model: nn.Module, g_val: dict) -> tuple[dict, dict]:
    """LiSSA: ``h_j = v + h_{j-1} - (H_batch + damping) h_{j-1} / scale``; then
    ``(H + damping)^-1 v ~ h_depth / scale``, averaged over ``repeat`` runs.

    ``scale`` (auto: 1.5 x a 20-step power-iteration estimate on one minibatch) must exceed
    the largest eigenvalue of the minibatch ``H + damping``; a divergence is detected and
    reported with the fix. Truncated at ``depth`` steps the recursion solves only up to a
    factor ``(1 - damping / scale) ** depth`` on the flattest directions."""
    opts = ctx.options_of("if_lissa")
    flat = Flat(g_val)
    v = flat.flat(g_val)
    x, y = ctx.train
    n = len(x)
    bs = min(int(opts.batch_size or ctx.batch_size), n)
    damping = float(ctx.damping)
    gauss_newton = opts.curvature == "gauss_newton"
    gen = torch.Generator().manual_seed(int(ctx.seed))
    scale = opts.scale
    if scale is None:
        sub = torch.randperm(n, generator=gen)[:bs]  # a minibatch like those of the recursion
        scale = 1.5 * power_iteration(hvp_operator(model, ctx.loss_fn, x[sub], y[sub], damping, ctx.batch_size, gauss_newton), v, 20, gen)
    scale = float(scale)
    if not scale > 0:
        raise ValueError(f"LiSSA scale must be positive, got {scale}")
    v_norm = float(v.norm())
    _, hvp = batch_hvp(model, ctx.loss_fn, gauss_newton)
    estimate = torch.zeros_like(v)
    for _ in range(opts.repeat):
        h = v.clone()
        for _ in range(opts.depth):
            idx = torch.randint(0, n, (bs,), generator=gen)
            h = v + h - (flat.flat(hvp(flat.unflat(h), x[idx], y[idx])) / bs + damping * h) / scale
            h_norm = float(h.norm())
            if not np.isfinite(h_norm) or h_norm > 1e8 * max(v_norm, 1e-30):
                raise RuntimeError(
                    f"LiSSA diverged (|h| = {h_norm:.3g}); the damped Hessian has eigenvalues outside (0, scale = {scale:.3g}): "
                    "raise influence.damping or influence.options.if_lissa.scale, or set its curvature: gauss_newton"
                )
        estimate += h / scale
    estimate /= opts.repeat
    info = {"solver": "lissa", "curvature": CURVATURES[opts.curvature], "depth": opts.depth, "repeat": opts.repeat, "batch_size": bs, "scale": scale}
    return flat.unflat(estimate), info


def estimate_if_lissa(ctx) -> dict[str, np.ndarray]:
    """Registry entry: influence functions with ``H^-1 g_val`` by LiSSA (stochastic, seeded)."""
    return _influence_function(ctx, "if_lissa", inverse_hvp_lissa)


def fisher_diagonal(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, batch_size: int = 32) -> dict:
    """Empirical-Fisher diagonal ``mean_i (grad L_i) ** 2`` per parameter (vmap over grad)."""
    params, buffers = split_state(model)

    def one_loss(p, xi, yi):
        return loss_fn(functional_call(model, {**p, **buffers}, (xi[None],)), yi[None], reduction="sum")

    per_sample = vmap(grad(one_loss), in_dims=(None, 0, 0))
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    for xb, yb in batches(x, y, batch_size):
        g = per_sample(params, xb, yb)
        for k in total:
            total[k] += g[k].detach().pow(2).sum(0)
    return {k: v / max(len(x), 1) for k, v in total.items()}


def estimate_if_diag(ctx) -> dict[str, np.ndarray]:
    """Registry entry: influence functions with the Hessian replaced by its diagonal
    empirical-Fisher approximation (plus damping)."""
    model = load_final(ctx)
    g_val = _val_gradient(ctx, model)
    diag = fisher_diagonal(model, ctx.loss_fn, *ctx.train, batch_size=ctx.options_of("if_diag").per_sample_batch)
    if ctx.damping <= 0:
        zero = sum(int((d == 0).sum()) for d in diag.values())
        if zero:
            raise ValueError(f"if_diag: {zero} parameters have zero Fisher diagonal and damping is 0; set influence.damping > 0")
    s = {k: g_val[k] / (diag[k] + ctx.damping) for k in g_val}
    record(ctx, "if_diag", {
        "solver": "diagonal", "curvature": "empirical_fisher_diagonal", "fallback": None, "damping": float(ctx.damping), "model": _final(ctx),
        "min_diag": float(min(d.min() for d in diag.values())), "max_diag": float(max(d.max() for d in diag.values())),
    })
    return {"if_diag": _score(ctx, model, s)}
