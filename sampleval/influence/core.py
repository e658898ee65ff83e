"""The shared vocabulary of the influence estimators.

Every estimator module imports from here (public names only) and from nothing else in
this package except :mod:`.last_layer`, :mod:`.solvers` and :mod:`sampleval.influence.registry`
(:mod:`.context` defines the context and the baseline; this module re-exports them):

- from :mod:`.context` (defined there): :class:`Checkpoint`, :func:`load_checkpoints`,
  :class:`Baseline`, :func:`load_selected`, :func:`architecture`, :func:`load_selected_model`,
  :class:`InfluenceSettings`, :data:`SETTINGS`, :class:`InfluenceContext`, :func:`record`;
- :class:`Samples`, :func:`batches`, :func:`streamable`, :func:`n_samples`, :func:`as_inputs`:
  one split, streamed batch by batch from uint8 images or materialised as float tensors;
- :func:`summed_gradient`: the gradient of the summed (validation) loss;
- :func:`directional_derivatives`: every sample's ``grad L(z_i) . direction`` without
  per-sample gradients (central differences or forward-mode AD);
- :func:`per_sample_grad_sq_norms`, :func:`split_state`, :func:`full_float32`;
- :func:`misclassified`, :func:`load_final`, :func:`on_device`.

Data: every function here takes ``x, y`` either as model-ready tensors or as uint8 images
(numpy arrays, memory-mapped or not) with target tensors; :func:`batches` converts one
batch at a time and moves it to the model's device, so memory is bounded by the batch
size, never by the number of samples.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, jacfwd, jacrev, jvp, vmap

from sampleval.training.loop import gather_images, target_tensor, to_float
from sampleval.influence.settings import METHODS
from sampleval.influence.context import (  # noqa: F401  (re-exported: the estimators' shared vocabulary)
    SETTINGS, Baseline, Checkpoint, InfluenceContext, InfluenceSettings, architecture, load_checkpoints, load_selected,
    load_selected_model, record,
)

log = logging.getLogger(__name__)


def split_state(model: nn.Module) -> tuple[dict, dict]:
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    return params, buffers


def placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters())
    return p.device, p.dtype


def batches(x, y, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None):
    """Consecutive model-ready ``(x, y)`` batches on ``device``.

    ``x`` may be float tensors or uint8 images (numpy, memory-mapped or not, or a tensor):
    uint8 batches are scaled like training inputs (:func:`~sampleval.training.loop.to_float`)
    and cast to ``dtype``, one batch at a time. Float targets (multi-label) follow ``dtype``.
    The fewest batches of at most ``batch_size``, all of one size but the last (270 samples
    at 256: 135 and 135, not 256 and 14): a small remainder batch costs almost as much as
    a full one on the CPU (the default validation gradient: 1.4x faster). One size, not
    sizes that alternate by one: alternating shapes grew the peak memory by 100 MB over
    100k samples (allocator caching per shape)."""
    for start, stop in batch_bounds(len(x), batch_size):
        xb = gather_images(x, np.arange(start, stop)) if isinstance(x, np.ndarray) else x[start:stop]
        yb = y[start:stop]
        if xb.dtype == torch.uint8:
            xb = to_float(xb)
        if dtype is not None:
            xb = xb.to(dtype)
            if yb.is_floating_point():
                yb = yb.to(dtype)
        if device is not None:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        yield xb, yb


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of every batch :func:`batches` cuts from ``n`` samples: the fewest
    batches of at most ``batch_size``, all of one size but the last. Shards of the training
    set (:func:`sampleval.influence.tracin.shard_segments`) are unions of these batches, so
    every sample is scored in the same batch as without shards."""
    n_batches = -(-n // batch_size)
    if n_batches == 0:
        return []
    size = -(-n // n_batches)
    return [(start, min(start + size, n)) for start in range(0, n, size)]


class Samples(Sequence):
    """One split for the estimators: uint8 images (possibly memory-mapped) and their targets.

    It unpacks like a tuple, ``x, y = samples``, into model-ready float tensors that are
    materialised on first use and kept (fine for the small models the Hessian, Captum and
    last-layer estimators are meant for). :attr:`raw` is ``(uint8 images, targets)`` with
    no float copy: the streaming estimators (fast TracIn, self-influence) pass it on and
    convert batch by batch (:func:`batches`)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, task: str):
        self.images, self.labels, self.task = images, labels, task
        self.targets = target_tensor(labels, task)
        self._tensors: tuple[torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:  # a pair (x, y), as the tuple form
        return 2

    def __getitem__(self, i):
        if self._tensors is None:
            self._tensors = as_inputs(self.images, self.labels, self.task)
        return self._tensors[i]

    @property
    def n(self) -> int:
        return len(self.images)

    @property
    def raw(self) -> tuple[np.ndarray, torch.Tensor]:
        return self.images, self.targets


def streamable(data) -> tuple:
    """``data.raw`` for :class:`Samples` (no float copy), else the ``(x, y)`` pair itself."""
    return data.raw if isinstance(data, Samples) else tuple(data)


def n_samples(data) -> int:
    return data.n if isinstance(data, Samples) else len(data[0])


def as_inputs(x: np.ndarray, y: np.ndarray, task: str, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images and labels -> model-ready tensors (same preprocessing and memory layout as
    training batches, :func:`~sampleval.training.loop.gather_images`)."""
    xt = to_float(gather_images(np.asarray(x), np.arange(len(x)))).to(dtype)
    yt = target_tensor(y, task)
    if task == "multilabel":
        yt = yt.to(dtype)
    return xt, yt


@contextmanager
def full_float32():
    """No TF32 inside: on Ampere and later GPUs cuDNN convolutions default to TF32 (10-bit
    mantissa), far too coarse for a difference quotient or a faithful gradient."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def summed_gradient(model: nn.Module, loss_fn: Callable, x, y, batch_size: int = 512) -> dict:
    """Gradient of the summed loss over (x, y), as a {name: tensor} dict on the model's device.

    Plain autograd (about 1.5x faster than ``torch.func.grad`` here, same values); the
    parameters' ``grad`` and ``requires_grad`` are restored afterwards."""
    device, dtype = placement(model)
    named = list(model.named_parameters())
    saved = [(p.requires_grad, p.grad) for _, p in named]
    try:
        for _, p in named:
            p.requires_grad_(True)
            p.grad = None
        with torch.enable_grad():
            for xb, yb in batches(x, y, batch_size, device, dtype):
                loss_fn(model(xb), yb, reduction="sum").backward()
        return {k: p.grad.detach() if p.grad is not None else torch.zeros_like(p) for k, p in named}
    finally:
        for (_, p), (requires_grad, g) in zip(named, saved):
            p.grad = g
            p.requires_grad_(requires_grad)


def central_step(params: dict, dtype: torch.dtype) -> float:
    """Step ``t`` along the unit direction: ``sqrt(eps) * max(1, rms(theta))`` in ``dtype``.

    ReLU networks are only piecewise smooth, so the step stays small: on the default
    SmallCNN in float32 the maximum error relative to the largest score is about 2e-4 at
    this step against 3e-4 at 3x and 2.6e-3 at 30x (kinks), and grows again below it
    (rounding)."""
    n_params = sum(p.numel() for p in params.values())
    p_rms = float(torch.sqrt(sum(p.double().pow(2).sum() for p in params.values()) / n_params))
    return float(torch.finfo(dtype).eps ** 0.5 * max(1.0, p_rms))


def directional_derivatives(
    model: nn.Module,
    loss_fn: Callable,
    direction: dict,
    x,
    y,
    batch_size: int = 256,
    method: str = "central",
) -> torch.Tensor:
    """``grad L(z_i) . direction`` for every sample, without per-sample gradients (float64, on the CPU).

    ``method='central'`` (default): central difference of two no-grad forward passes at
    ``theta +- t * u`` (u = direction / |direction|, t from :func:`central_step`), about
    two forward passes per sample. In float32 the maximum error relative to the largest
    value is a few 1e-4 (Spearman about 0.999999 on SmallCNN and ResNet-18); in float64
    it is far below 1e-4, which tests/test_tracin.py checks against Captum.
    ``method='jvp'``: forward-mode AD, exact to rounding, about three forward passes."""
    if method not in METHODS:
        raise ValueError(f"directional derivative method must be one of {', '.join(METHODS)}, got {method!r}")
    params, buffers = split_state(model)
    device, dtype = placement(model)
    tangents = {k: direction[k].to(device=v.device, dtype=v.dtype) for k, v in params.items()}
    out = []
    if method == "central":
        d_norm = float(torch.sqrt(sum(t.double().pow(2).sum() for t in tangents.values())))
        if d_norm == 0:
            return torch.zeros(len(x), dtype=torch.float64)
        step = central_step(params, dtype)
        with full_float32():
            lp = _losses_at(model, loss_fn, tangents, step / d_norm, x, y, batch_size, device, dtype)
            lm = _losses_at(model, loss_fn, tangents, -step / d_norm, x, y, batch_size, device, dtype)
        return (lp - lm) * (d_norm / (2 * step))
    with full_float32():
        for xb, yb in batches(x, y, batch_size, device, dtype):

            def per_sample_loss(p):
                return loss_fn(functional_call(model, {**p, **buffers}, (xb,)), yb, reduction="none")

            _, dots = jvp(per_sample_loss, (params,), (tangents,))
            out.append(dots.detach().double().cpu())
    return torch.cat(out)


def _losses_at(model: nn.Module, loss_fn: Callable, direction: dict, scale: float, x, y, batch_size: int, device, dtype) -> torch.Tensor:
    """Per-sample losses (float64, CPU) at ``theta + scale * direction``, one no-grad pass.

    The parameters are moved in place and restored bit for bit afterwards (also on error):
    about 10 % faster on the default model than ``functional_call`` with perturbed copies,
    and no second copy of the parameters. The pass runs in eval mode, so BatchNorm running
    statistics are read, never updated."""
    named = [(k, p) for k, p in model.named_parameters()]
    saved = [p.detach().clone() for _, p in named]
    was_training = model.training
    out = []
    try:
        model.eval()
        with torch.no_grad():
            for k, p in named:
                p.add_(direction[k], alpha=scale)
            for xb, yb in batches(x, y, batch_size, device, dtype):
                out.append(loss_fn(model(xb), yb, reduction="none").double().cpu())
    finally:
        with torch.no_grad():
            for (_, p), s in zip(named, saved):
                p.copy_(s)
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def per_sample_grad_sq_norms(model: nn.Module, loss_fn: Callable, x, y, batch_size: int = 128) -> torch.Tensor:
    """``||grad L(z_i)||^2`` for every sample via vmap over grad (float64, on the CPU)."""
    params, buffers = split_state(model)
    device, dtype = placement(model)

    def one_loss(p, xi, yi):
        return loss_fn(functional_call(model, {**p, **buffers}, (xi[None],)), yi[None], reduction="sum")

    per_sample = vmap(grad(one_loss), in_dims=(None, 0, 0))
    out = []
    with full_float32():
        for xb, yb in batches(x, y, batch_size, device, dtype):
            g = per_sample(params, xb, yb)
            out.append(sum(v.flatten(1).double().pow(2).sum(1) for v in g.values()).detach().cpu())
    return torch.cat(out)


def output_hessians(loss_fn: Callable, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample Hessians of the loss with respect to the logits, ``d2 L_i / dz_i^2``: (n, K, K)."""

    def one_loss(zi, yi):
        return loss_fn(zi[None], yi[None], reduction="sum")

    return vmap(jacfwd(jacrev(one_loss)))(z.detach(), y).detach()


def misclassified(logits: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """Boolean mask of misclassified samples: wrong arg-max (multi-class), or any label
    wrong at probability 0.5 (multi-label)."""
    if task == "multilabel":
        return ((logits > 0).to(y.dtype) != (y > 0.5).to(y.dtype)).any(1)
    return logits.argmax(1) != y


def load_final(ctx) -> nn.Module:
    """``ctx.model`` with the weights selected on validation, in eval mode."""
    model = ctx.model
    model.load_state_dict(ctx.final_state)
    model.eval()  # BatchNorm running statistics and no dropout, as at scoring time
    return model


def on_device(ctx) -> nn.Module:
    """The model on ``ctx.device``, channels-last if ``ctx.channels_last``: the streaming
    estimators run there, the others on the CPU in the default layout (Captum's hook mode
    cannot read channels-last gradients). Channels-last makes DenseNet-121's no-grad forward
    pass about 1.5x faster on the CPU (benchmarks/RESULTS.md)."""
    log.info("running on %s%s", ctx.device, " (channels-last)" if ctx.channels_last else "")
    model = ctx.model.to(ctx.device)
    return model.to(memory_format=torch.channels_last) if ctx.channels_last else model


def make_context(
    baseline: Baseline, settings: InfluenceSettings, *, device: torch.device | None = None, compute=None,
    job_cache: str | None = None, shards: int = 1,
) -> InfluenceContext:
    """Everything an estimator needs, from a :class:`Baseline` (prepared data, recipe,
    checkpoints, selected model; :meth:`Baseline.load` reads them from disk) and the
    :class:`InfluenceSettings` every estimator reads: the one place that builds it.
    Where to run: ``device`` (the streaming estimators; default CPU), ``compute`` (where the
    estimators that run jobs of their own run them: shards, cleanlab's folds, trak's
    ensemble; None: serially here), ``job_cache`` (the folder where such an estimator caches
    its finished jobs; None: no cache) and ``shards`` (training-set shards of the estimators
    whose registry entry says ``shards``)."""
    from sampleval.training.loop import make_loss

    prepared, cfg = baseline.prepared, baseline.cfg
    tr, va = prepared.split("train"), prepared.split("val")
    return InfluenceContext(
        model=architecture(prepared, cfg),
        loss_fn=make_loss(prepared.task, cfg, tr.y),
        checkpoints=baseline.checkpoints,
        final_state=baseline.final_state,
        final_epoch=baseline.final_epoch,
        train=Samples(tr.x, tr.y, prepared.task),
        val=Samples(va.x, va.y, prepared.task),
        task=prepared.task,
        n_classes=prepared.n_classes,
        **{k: getattr(settings, k) for k in SETTINGS},
        seed=settings.seed,
        device=device or torch.device("cpu"),
        channels_last=cfg.channels_last,
        options=dict(settings.options),
        train_config=cfg,
        compute=compute,
        job_cache=job_cache,
        shards=shards,
    )
