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
(``influence.options.tracin``, :func:`sampleval.influence.registry.checkpoint_epochs`): ``checkpoints: all`` (default) or
``up_to_selected`` (up to the epoch selected on validation), and ``burn_in: k`` skips the
first k epochs. The per-checkpoint columns ``tracin_epoch_NNN`` always cover every
checkpoint, so any variant is also a plain sum of columns of the scores table
(:func:`sampleval.influence.tracin_variants.variant_scores`).

Shards (``influence.shards``, :func:`sharded_scores`): the training set is cut into
contiguous shards, each scored by one executor job (:func:`sampleval.runtime.compute.run_jobs`:
a local process or a Ray task). Every job receives the model, the checkpoints and the
prepared data in the shared object, and computes the summed validation gradient of each
checkpoint itself (``val_grad='job'``; ``'driver'`` computes it once here and ships it).
Shard boundaries are batch boundaries of the unsharded run (:func:`~.core.batch_bounds`),
so every sample is scored in the same batch: the merged columns equal the unsharded ones
bit for bit on the CPU, in float64 and float32 alike, as long as the jobs use the same torch
thread count (``train.cpu_threads``, which the executor sets): tests/test_shards.py (float64),
benchmarks/RESULTS-scale.md (the default float32 parquet, byte for byte). Elsewhere (GPUs,
another thread count or CPU kind) bits are not promised: expect per column
``|sharded - unsharded| <= 1e-4 * max |score|`` in float32 (on the default data 1 vs 2 CPU
threads differ by 2e-5 of it), below the central difference's own error of a few 1e-4.

Why the gradient is computed in each job: with as many shards as workers (``auto``), each job
spends the gradient's time either way (in the driver it runs before the jobs), yet in the job
it runs on the job's own device (a Ray GPU, when the driver has none) and nothing extra is
shipped. ``'driver'`` is cheaper only with more shards than workers.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from sampleval.influence.core import (
    Checkpoint, batch_bounds, directional_derivatives, full_float32, on_device, per_sample_grad_sq_norms, record, streamable, summed_gradient,
)
from sampleval.influence.registry import checkpoint_epochs

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


# --- shards -------------------------------------------------------------------------------

VAL_GRAD = ("job", "driver")


def shard_segments(n: int, batch_size: int, shards: int) -> list[list[tuple[int, int, int]]]:
    """Contiguous shards of ``n`` training samples, each a list of ``(start, stop, size)``
    segments that :func:`~.core.batches` cuts (at batch size ``size``) into exactly the
    batches of the unsharded run over ``[start, stop)``.

    The unsharded batches (:func:`~.core.batch_bounds`) are dealt out in order, as evenly as
    whole batches allow; with more shards than batches, some would be empty and are dropped.
    A segment is a run of batches of one size: the full ones, then the smaller last one
    (which :func:`~.core.batches` would otherwise rebalance with its neighbours)."""
    bounds = batch_bounds(n, batch_size)
    shards = max(1, min(int(shards), len(bounds)))
    out = []
    for i in range(shards):
        mine = bounds[i * len(bounds) // shards:(i + 1) * len(bounds) // shards]
        segments: list[tuple[int, int, int]] = []
        for start, stop in mine:
            size = stop - start
            if segments and segments[-1][2] == size:
                segments[-1] = (segments[-1][0], stop, size)
            else:
                segments.append((start, stop, size))
        out.append(segments)
    return out


@dataclass
class ShardInputs:
    """The shared object of the shard jobs: sent once per worker (local) or put once in Ray's
    object store. Everything in memory (the training/validation uint8 images and targets, the
    checkpoints' weights), so that a Ray worker on another machine needs no shared file system."""

    model: nn.Module  # the architecture, on the CPU
    loss_fn: Callable
    checkpoints: list[Checkpoint]
    train: tuple  # (x, y) streamable: uint8 images + targets, or float tensors
    val: tuple | None  # None for self-influence
    batch_size: int
    method: str = "central"
    device: str = "cpu"
    channels_last: bool = False
    val_grads: list[dict] | None = None  # val_grad='driver': summed validation gradient per checkpoint (CPU)


def _shard_model(shared: ShardInputs) -> nn.Module:
    """A private copy of the shared architecture on the job's device. A copy, because the
    local pool hands tensors to its workers in shared memory (torch's reductions of
    ``multiprocessing``): every worker would otherwise load checkpoints into, and perturb,
    the same parameters (seen: wrong scores for the second shard of the first checkpoint)."""
    model = copy.deepcopy(shared.model).to(torch.device(shared.device))
    return model.to(memory_format=torch.channels_last) if shared.channels_last else model


def score_shard(shared: ShardInputs, job: dict) -> dict[str, np.ndarray]:
    """One shard job (:func:`sampleval.runtime.compute.run_jobs`): ``job = {'kind': 'tracin' |
    'self_influence', 'segments': [[start, stop, size], ...]}``. Returns per checkpoint the
    lr-weighted contribution of the shard's samples (float64), keyed ``tracin_epoch_NNN`` or
    ``self_influence_epoch_NNN``, computed exactly as :func:`tracin_scores` /
    :func:`self_influence_scores` do."""
    model = _shard_model(shared)
    x, y = shared.train
    kind = job["kind"]
    out: dict[str, np.ndarray] = {}
    for c, ckpt in enumerate(shared.checkpoints):
        model.load_state_dict(ckpt.state)
        model.eval()
        if kind == "tracin":
            if shared.val_grads is not None:
                g_val = shared.val_grads[c]
            else:
                with full_float32():
                    g_val = summed_gradient(model, shared.loss_fn, *shared.val, batch_size=shared.batch_size)
            parts = [directional_derivatives(model, shared.loss_fn, g_val, x[a:b], y[a:b], batch_size=size, method=shared.method) for a, b, size in job["segments"]]
        elif kind == "self_influence":
            parts = [per_sample_grad_sq_norms(model, shared.loss_fn, x[a:b], y[a:b], batch_size=size) for a, b, size in job["segments"]]
        else:
            raise ValueError(f"shard job kind must be tracin or self_influence, got {kind!r}")
        out[f"{kind}_epoch_{ckpt.epoch:03d}"] = (ckpt.lr * torch.cat(parts)).numpy()
    return out


def sharded_scores(
    kind: str,
    model: nn.Module,
    loss_fn: Callable,
    checkpoints: Sequence[Checkpoint],
    train,
    val=None,
    batch_size: int = 256,
    shards: int = 2,
    compute=None,
    method: str = "central",
    device: str = "cpu",
    channels_last: bool = False,
    val_grad: str = "job",
) -> dict[str, np.ndarray]:
    """:func:`tracin_scores` (``kind='tracin'``: the same columns) or
    :func:`self_influence_scores` (``kind='self_influence'``: ``{'self_influence': ...}``)
    over ``shards`` shards of the training set, one :func:`~sampleval.runtime.compute.run_jobs` job
    each on ``compute`` (None: in this process). Equal bit for bit to the unsharded result
    on the CPU at any number of shards and workers (:func:`shard_segments`).

    ``val_grad``: ``'job'`` (default) every job computes the summed validation gradient of
    each checkpoint on its own device; ``'driver'`` computes it once here, on ``device``,
    and ships it to the jobs in the shared object."""
    from sampleval.runtime.compute import SERIAL, run_jobs

    if val_grad not in VAL_GRAD:
        raise ValueError(f"val_grad must be one of {', '.join(VAL_GRAD)}, got {val_grad!r}")
    train = streamable(train)
    n = len(train[0])
    inputs = ShardInputs(
        model=model.cpu(), loss_fn=loss_fn, checkpoints=list(checkpoints), train=train,
        val=streamable(val) if kind == "tracin" else None, batch_size=batch_size, method=method,
        device=str(device), channels_last=channels_last,
    )
    if kind == "tracin" and val_grad == "driver":
        grads = []
        m = _shard_model(inputs)
        for ckpt in inputs.checkpoints:
            m.load_state_dict(ckpt.state)
            m.eval()
            with full_float32():
                grads.append({k: v.cpu() for k, v in summed_gradient(m, loss_fn, *inputs.val, batch_size=batch_size).items()})
        inputs = replace(inputs, model=m.cpu(), val_grads=grads)
    segments = shard_segments(n, batch_size, shards)
    jobs = [{"kind": kind, "segments": [list(s) for s in seg]} for seg in segments]
    labels = [f"{kind} shard {i + 1}/{len(jobs)} (samples {seg[0][0]}..{seg[-1][1] - 1})" for i, seg in enumerate(segments)]
    parts = run_jobs(score_shard, jobs, compute or SERIAL, shared=inputs, labels=labels, desc=f"{kind} shards")
    out: dict[str, np.ndarray] = {}
    total = torch.zeros(n, dtype=torch.float64)
    for ckpt in inputs.checkpoints:  # merged and summed in checkpoint order, as unsharded
        key = f"{kind}_epoch_{ckpt.epoch:03d}"
        column = torch.from_numpy(np.concatenate([p[key] for p in parts]))
        if kind == "tracin":
            out[key] = column.numpy()
        total += column
    out[kind] = total.numpy()
    return out


def resolve_shards(shards, compute) -> int:
    """``influence.shards``: an integer, or ``auto`` = ``compute.workers`` (one shard per worker)."""
    return int(compute.workers) if shards == "auto" else int(shards)


def _shards(ctx) -> int:
    """The number of non-empty shards for ``ctx`` (logged, not recorded: outputs do not depend on it)."""
    shards = len(shard_segments(len(streamable(ctx.train)[0]), ctx.batch_size, ctx.shards))
    if shards > 1:
        compute = ctx.compute
        where = f"{compute.backend}, {compute.workers} workers" if compute is not None else "in this process"
        log.info("%d training-set shards (%s), jobs on %s", shards, where, job_device(ctx))
    return shards


def job_device(ctx) -> str:
    """Where shard jobs run: CUDA when each Ray job asks for GPUs (Ray assigns them),
    else ``ctx.device`` (train.device as this process resolved it)."""
    compute = ctx.compute
    if compute is not None and compute.backend == "ray" and compute.gpus_per_job > 0:
        return "cuda"
    return str(ctx.device)


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
    shards = _shards(ctx)
    if shards > 1:
        out = sharded_scores("tracin", ctx.model, ctx.loss_fn, ctx.checkpoints, ctx.train, ctx.val, ctx.batch_size, shards, ctx.compute,
                             ctx.tracin_method, job_device(ctx), ctx.channels_last)
    else:
        out = tracin_scores(on_device(ctx), ctx.loss_fn, ctx.checkpoints, ctx.train, ctx.val, ctx.batch_size, progress=True, method=ctx.tracin_method)
    used = checkpoint_epochs(_epochs_used(ctx.checkpoints), opts.checkpoints, opts.burn_in, ctx.final_epoch)
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
    shards = _shards(ctx)
    record(ctx, "self_influence", {"method": "vmap per-sample gradients", "epochs_used": _epochs_used(ctx.checkpoints)})
    if shards > 1:
        return sharded_scores("self_influence", ctx.model, ctx.loss_fn, ctx.checkpoints, ctx.train, None, ctx.batch_size, shards, ctx.compute,
                              device=job_device(ctx), channels_last=ctx.channels_last)
    return {"self_influence": self_influence_scores(on_device(ctx), ctx.loss_fn, ctx.checkpoints, ctx.train, ctx.batch_size, progress=True)}


def estimate_tracincp(ctx) -> dict[str, np.ndarray]:
    """Registry entry: Captum's TracInCP, the reference implementation (on the CPU)."""
    record(ctx, "tracincp", {"method": "captum TracInCP", "epochs_used": _epochs_used(ctx.checkpoints)})
    return captum_tracincp_scores(ctx.model.cpu().to(memory_format=torch.contiguous_format), ctx.loss_fn, ctx.checkpoints, ctx.train, ctx.val, ctx.batch_size, progress=True)
