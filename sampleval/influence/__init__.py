"""Influence estimators behind one interface.

An estimator is a function ``estimate(ctx: InfluenceContext) -> dict[str, np.ndarray]``
returning one float64 array per output column, one entry per training sample, in the
order of ``ctx.train``. Its main column is named like the estimator; extra columns
start with the estimator's name (``tracin`` also returns ``tracin_epoch_NNN`` per checkpoint).

``ctx.train`` and ``ctx.val`` unpack into model-ready float tensors (``x, y = ctx.train``);
in the pipeline they are :class:`~sampleval.influence.tracin.Samples`, which stream
from the uint8 images for the estimators built to scale (``tracin``, ``self_influence``,
which also run on ``ctx.device``) and materialise the float tensors for the others.

Sign convention for every estimator: positive = helpful (the sample lowers the
validation loss); negative = harmful.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from .tracin import Checkpoint, Samples, n_samples

# name -> "module:function", imported on use so that one estimator's dependencies
# never slow down or break another.
REGISTRY: dict[str, str] = {
    "tracin": "sampleval.influence.tracin:estimate_tracin",
    "self_influence": "sampleval.influence.tracin:estimate_self_influence",
    "tracincp": "sampleval.influence.tracin:estimate_tracincp",
    "if_cg": "sampleval.influence.hessian:estimate_if_cg",
    "if_lissa": "sampleval.influence.hessian:estimate_if_lissa",
    "if_diag": "sampleval.influence.hessian:estimate_if_diag",
    "if_last_layer": "sampleval.influence.hessian:estimate_if_last_layer",
    "if_last_layer_miscls": "sampleval.influence.hessian:estimate_if_last_layer_miscls",
    "tracin_last_layer": "sampleval.influence.baselines:estimate_tracin_last_layer",
    "tracin_randproj": "sampleval.influence.baselines:estimate_tracin_randproj",
    "loss": "sampleval.influence.baselines:estimate_loss",
    "cleanlab": "sampleval.influence.baselines:estimate_cleanlab",
}


@dataclass
class InfluenceContext:
    model: nn.Module  # the architecture; estimators load the weights they need
    loss_fn: Callable  # the training loss: loss_fn(logits, target, reduction)
    checkpoints: list[Checkpoint]  # per-epoch states with the learning rate of each epoch
    final_state: dict  # weights of the model selected on validation
    train: Samples | tuple[torch.Tensor, torch.Tensor]  # unpacks into model-ready inputs and targets
    val: Samples | tuple[torch.Tensor, torch.Tensor]
    task: str
    n_classes: int
    batch_size: int = 256
    damping: float = 0.01
    cg_iterations: int = 100
    seed: int = 0
    tracin_method: str = "central"  # directional derivatives: 'central' (faster) or 'jvp' (exact)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # for tracin / self_influence
    channels_last: bool = False  # tracin / self_influence: channels-last model (train.channels_last)
    extra: dict = field(default_factory=dict)


def get_estimator(name: str) -> Callable:
    if name not in REGISTRY:
        raise ValueError(f"unknown influence estimator {name!r} (allowed: {', '.join(REGISTRY)})")
    module, func = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), func)


def run_estimator(name: str, ctx: InfluenceContext) -> dict[str, np.ndarray]:
    columns = get_estimator(name)(ctx)
    n = n_samples(ctx.train)
    if name not in columns:
        raise RuntimeError(f"estimator {name} returned no '{name}' column")
    for col, values in columns.items():
        if np.shape(values) != (n,):
            raise RuntimeError(f"estimator {name} column {col} has shape {np.shape(values)}, expected ({n},)")
    return {k: np.asarray(v, dtype=np.float64) for k, v in columns.items()}


def make_context(
    prepared, cfg, checkpoint_dir, final_model_path, batch_size: int, damping: float, cg_iterations: int, seed: int, tracin_method: str = "central",
    device: torch.device | None = None,
) -> InfluenceContext:
    """Everything an estimator needs, from the prepared data and the training outputs."""
    from ..models import build_model
    from ..training import list_checkpoints, load_checkpoint, make_loss
    from .tracin import load_checkpoints

    tr, va = prepared.split("train"), prepared.split("val")
    model = build_model(cfg.model, tr.x.shape[1], prepared.n_classes, tr.x.shape[-1], None)
    return InfluenceContext(
        model=model,
        loss_fn=make_loss(prepared.task, cfg, tr.y),
        checkpoints=load_checkpoints(list_checkpoints(checkpoint_dir)),
        final_state=load_checkpoint(final_model_path)["model"],
        train=Samples(tr.x, tr.y, prepared.task),
        val=Samples(va.x, va.y, prepared.task),
        task=prepared.task,
        n_classes=prepared.n_classes,
        batch_size=batch_size,
        damping=damping,
        cg_iterations=cg_iterations,
        seed=seed,
        tracin_method=tracin_method,
        device=device or torch.device("cpu"),
        channels_last=cfg.channels_last,
    )
