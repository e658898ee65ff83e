"""Influence estimators behind one interface.

An estimator is a function ``estimate(ctx: InfluenceContext) -> dict[str, np.ndarray]``
returning one float64 array per output column, one entry per training sample, in the
order of ``ctx.train``. Its main column is named like the estimator; extra columns
start with the estimator's name (``tracin`` also returns ``tracin_epoch_NNN`` per checkpoint).
It leaves its diagnostics (solver, iterations, residual, curvature, fallback, damping,
checkpoints used) in ``ctx.diagnostics[name]`` via :func:`.core.record`.

Layout: :mod:`.core` is the shared vocabulary (checkpoints, samples, batching, summed
gradients, directional derivatives); :mod:`.last_layer` the last-layer quantities;
:mod:`.solvers` CG, power iteration and the PSD projection; :mod:`sampleval.estimators` the one entry
per estimator (name, function, kind, options); the estimators are sibling modules
(:mod:`.tracin`, :mod:`.hessian`, :mod:`.if_last_layer`, :mod:`.baselines`) that import
public names from those only.

``ctx.train`` and ``ctx.val`` unpack into model-ready float tensors (``x, y = ctx.train``);
in the pipeline they are :class:`~sampleval.influence.core.Samples`, which stream
from the uint8 images for the estimators built to scale (``tracin``, ``self_influence``,
which also run on ``ctx.device``) and materialise the float tensors for the others.

Sign convention for every signed estimator: positive = helpful (the sample lowers the
validation loss); negative = harmful. Magnitude estimators (``self_influence``) are
non-negative, high = unusual.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .context import SETTINGS, Baseline, Checkpoint, InfluenceContext, InfluenceSettings, architecture
from .core import Samples, n_samples
from ..estimators import ESTIMATORS, get

__all__ = ["Baseline", "Checkpoint", "InfluenceContext", "InfluenceSettings", "SETTINGS", "Samples", "REGISTRY", "ESTIMATORS", "get_estimator", "run_estimator",
           "make_context"]

# name -> "module:function" (kept for callers of the older interface; the entries are in sampleval.estimators)
REGISTRY: dict[str, str] = {name: e.function for name, e in ESTIMATORS.items()}


def get_estimator(name: str) -> Callable:
    return get(name).load()


def run_estimator(name: str, ctx: InfluenceContext) -> dict[str, np.ndarray]:
    if get(name).needs_recipe and ctx.train_config is None:
        raise ValueError(f"{name} retrains models with the baseline's recipe: the influence context has no train_config (make_context sets it)")
    columns = get_estimator(name)(ctx)
    n = n_samples(ctx.train)
    if name not in columns:
        raise RuntimeError(f"estimator {name} returned no '{name}' column")
    for col, values in columns.items():
        if np.shape(values) != (n,):
            raise RuntimeError(f"estimator {name} column {col} has shape {np.shape(values)}, expected ({n},)")
    return {k: np.asarray(v, dtype=np.float64) for k, v in columns.items()}


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
    from ..training import make_loss

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
