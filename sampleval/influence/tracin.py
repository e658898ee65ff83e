"""TracIn over training checkpoints: our fast aggregate estimator and Captum's reference.

Score of training sample i (sign: positive = helpful, the sample lowers the summed
validation loss)::

    tracin_i = sum_c lr_c * grad L(z_i; theta_c) . sum_v grad L(z_v; theta_c)

where c runs over the per-epoch checkpoints, lr_c is the learning rate used in the
epoch that produced checkpoint c, L is the training loss and v runs over the
validation set. A gradient step on z_i changes the validation loss by about
``-lr * tracin_i``, hence the sign.

The fast path never materialises per-sample gradients: per checkpoint it computes the
summed validation gradient G_c once (one backward pass), then every training sample's
``grad L_i . G_c`` is the directional derivative of its loss along G_c: by default a
central difference of two no-grad forward passes at ``theta_c +- t G_c/|G_c|``
(``method='central'``, about 2 forward passes per sample), or exactly by forward-mode AD
(``method='jvp'``, ``torch.func.jvp``, about 3).

Self-influence ``sum_c lr_c * ||grad L(z_i; theta_c)||^2`` needs per-sample gradient
norms: ``torch.func.vmap`` over ``grad`` (fine for small models). It is its own estimator
(``self_influence``) so that the aggregate score does not pay for it.

Which checkpoints the ``tracin`` column sums over is an option
(``influence.options.tracin``, :func:`select_epochs`): ``checkpoints: all`` (default) or
``up_to_selected`` (up to the epoch selected on validation), and ``burn_in: k`` skips the
first k epochs. The per-checkpoint columns ``tracin_epoch_NNN`` always cover every
checkpoint, so any variant is also a plain sum of columns of the scores table
(:func:`sampleval.tracin_variants.variant_scores`).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .core import Checkpoint, directional_derivatives, full_float32, on_device, per_sample_grad_sq_norms, record, streamable, summed_gradient
from ..estimators import select_epochs

log = logging.getLogger(__name__)


def tracin_scores(
    model: nn.Module,
    loss_fn: Callable,
    checkpoints: Sequence[Checkpoint],
    train,
    val,
    batch_size: int = 256,
    progress: bool = True,
    method: str = "central",
) -> dict[str, np.ndarray]:
    """Fast aggregate TracIn (``method``: 'central' difference or 'jvp' forward-mode AD, see
    :func:`directional_derivatives`) on the model's device. ``train`` and ``val`` are
    ``(x, y)`` pairs or :class:`Samples` (streamed from uint8). Returns
    ``{'tracin': total, 'tracin_epoch_NNN': per-checkpoint}`` as float64 arrays (one entry
    per training sample)."""
    train, val = streamable(train), streamable(val)
    total = torch.zeros(len(train[0]), dtype=torch.float64)
    out: dict[str, np.ndarray] = {}
    for ckpt in tqdm(checkpoints, desc=f"TracIn ({method}) checkpoints", disable=not progress):
        model.load_state_dict(ckpt.state)
        model.eval()  # BatchNorm/Dropout in eval mode, as at scoring time
        with full_float32():
            g_val = summed_gradient(model, loss_fn, *val, batch_size=batch_size)
        contribution = ckpt.lr * directional_derivatives(model, loss_fn, g_val, *train, batch_size=batch_size, method=method)
        out[f"tracin_epoch_{ckpt.epoch:03d}"] = contribution.numpy()
        total += contribution
    out["tracin"] = total.numpy()
    return out


def self_influence_scores(
    model: nn.Module, loss_fn: Callable, checkpoints: Sequence[Checkpoint], train, batch_size: int = 128, progress: bool = True
) -> np.ndarray:
    """TracIn self-influence ``sum_c lr_c * ||grad L(z_i; theta_c)||^2`` (float64), streamed like
    :func:`tracin_scores`. Per-sample gradients via vmap: affordable for small models."""
    train = streamable(train)
    total = torch.zeros(len(train[0]), dtype=torch.float64)
    for ckpt in tqdm(checkpoints, desc="self-influence checkpoints", disable=not progress):
        model.load_state_dict(ckpt.state)
        model.eval()
        total += ckpt.lr * per_sample_grad_sq_norms(model, loss_fn, *train, batch_size=batch_size)
    return total.numpy()


def captum_tracincp_scores(
    model: nn.Module,
    loss_fn: Callable,
    checkpoints: Sequence[Checkpoint],
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    batch_size: int = 256,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """The same quantity with Captum's TracInCP (the reference): the validation x train
    influence matrix summed over validation samples, plus Captum's self-influence, with
    the training loss function and each checkpoint weighted by its learning rate."""
    from captum.influence import TracInCP
    from torch.utils.data import TensorDataset

    states = {f"ckpt-{c.epoch:03d}": c for c in checkpoints}

    def load(m: nn.Module, path: str) -> float:
        m.load_state_dict(states[path].state)
        m.eval()
        return states[path].lr

    # Hook mode (fast, per-batch sample-wise gradients) sees only Conv2d/Linear layers and
    # needs a summed loss; use it only when every parameter lives in such a layer.
    hook_mode = all(
        isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules() if any(True for _ in m.parameters(recurse=False))
    )
    loss = ReducedLoss(loss_fn, "sum" if hook_mode else "none")
    tracin = TracInCP(
        model,
        TensorDataset(*train),
        checkpoints=list(states),
        checkpoints_load_func=load,
        loss_fn=loss,
        test_loss_fn=loss,
        batch_size=batch_size,
        sample_wise_grads_per_batch=hook_mode,
    )
    matrix = tracin.influence(val, k=None, show_progress=progress)
    self_inf = tracin.self_influence(show_progress=progress)
    return {
        "tracincp": matrix.sum(dim=0).double().numpy(),
        "tracincp_self_influence": self_inf.double().numpy(),
    }


class ReducedLoss:
    """The training loss with the fixed ``reduction`` attribute Captum inspects."""

    def __init__(self, loss_fn: Callable, reduction: str):
        self.loss_fn = loss_fn
        self.reduction = reduction

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(outputs, targets, reduction=self.reduction)


def _epochs_used(ckpts: Sequence[Checkpoint]) -> list[int]:
    return [c.epoch for c in ckpts]


def estimate_tracin(ctx) -> dict[str, np.ndarray]:
    """Registry entry: fast aggregate TracIn with per-checkpoint columns, on ``ctx.device``.

    ``tracin_epoch_NNN`` covers every checkpoint; ``tracin`` sums those that
    ``influence.options.tracin`` selects (default: all), in checkpoint order."""
    opts = ctx.options_of("tracin")
    out = tracin_scores(on_device(ctx), ctx.loss_fn, ctx.checkpoints, ctx.train, ctx.val, ctx.batch_size, progress=True, method=ctx.tracin_method)
    used = select_epochs(_epochs_used(ctx.checkpoints), opts.checkpoints, opts.burn_in, ctx.final_epoch)
    if len(used) < len(ctx.checkpoints):
        total = np.zeros(len(out["tracin"]), dtype=np.float64)
        for epoch in used:
            total = total + out[f"tracin_epoch_{epoch:03d}"]
        out["tracin"] = total
    record(ctx, "tracin", {
        "method": ctx.tracin_method, "checkpoints": opts.checkpoints, "burn_in": opts.burn_in,
        "epochs_used": used, "selected_epoch": ctx.final_epoch,
    })
    return out


def estimate_self_influence(ctx) -> dict[str, np.ndarray]:
    """Registry entry: TracIn self-influence (a label-noise baseline), on ``ctx.device``."""
    record(ctx, "self_influence", {"method": "vmap per-sample gradients", "epochs_used": _epochs_used(ctx.checkpoints)})
    return {"self_influence": self_influence_scores(on_device(ctx), ctx.loss_fn, ctx.checkpoints, ctx.train, ctx.batch_size, progress=True)}


def estimate_tracincp(ctx) -> dict[str, np.ndarray]:
    """Registry entry: Captum's TracInCP, the reference implementation (on the CPU)."""
    record(ctx, "tracincp", {"method": "captum TracInCP", "epochs_used": _epochs_used(ctx.checkpoints)})
    return captum_tracincp_scores(ctx.model.cpu().to(memory_format=torch.contiguous_format), ctx.loss_fn, ctx.checkpoints, ctx.train, ctx.val, ctx.batch_size, progress=True)
