"""Several estimators over one baseline, as executor jobs: one job per estimator.

:func:`run_estimators` is what the ``influence`` stage calls. Each estimator in the list is a
job of :func:`sampleval.runtime.compute.run_jobs` (local processes or Ray tasks), so the estimators run
side by side and a cluster runs each where it is placed. The job is a pure function of the
shared :class:`Baseline` (prepared data, recipe, checkpoints, selected model) and of its spec:
the estimator's name, its options and the ``influence`` settings every estimator reads.

With a job cache (:class:`sampleval.runtime.compute.JobCache`, keyed by :func:`baseline_fingerprint`
and the spec), an estimator whose inputs did not change is read back: adding one to
``influence.methods`` computes only the new one, and changing one estimator's options reruns
only that estimator.

Estimators that fan out jobs of their own run in this process instead, with the whole
executor for their jobs (jobs are not nested): those whose registry entry says ``fans_out``
(TRAK's ensemble), and those that say ``shards`` (``tracin``, ``self_influence``) when
``shards > 1``. Their results are cached the same way. Where an
estimator runs never changes its scores: the columns equal those of a serial run, bit for bit
on one device (tests/test_influence_runner.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from sampleval.runtime.compute import SERIAL, Compute, JobCache, run_jobs
from sampleval.runtime.fingerprints import arrays_hash, recipe_fingerprint
from sampleval.influence.registry import get
from sampleval.influence.context import SETTINGS, Baseline, InfluenceContext, InfluenceSettings
from sampleval.influence.core import make_context, n_samples


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


@dataclass(frozen=True)
class EstimatorResult:
    columns: dict[str, np.ndarray]  # float64, one entry per training sample, in the estimator's order
    diagnostics: dict = field(default_factory=dict)


def baseline_fingerprint(baseline: Baseline) -> str:
    """The job cache's shared part: the data, the recipe and every checkpoint's weights and learning rate."""
    import hashlib

    h = hashlib.sha256(recipe_fingerprint(baseline.prepared, baseline.cfg).encode())
    for c in baseline.checkpoints:
        h.update(f"epoch {c.epoch} lr {c.lr!r}".encode())
        h.update(arrays_hash(c.state.items()).encode())
    h.update(f"final {baseline.final_epoch}".encode())
    h.update(arrays_hash(baseline.final_state.items()).encode())
    return h.hexdigest()


def estimator_spec(method: str, settings: InfluenceSettings) -> dict:
    """A job's spec: the estimator, its own options, the seed and the settings every estimator reads."""
    return {"method": method, "options": settings.options.get(method), "seed": int(settings.seed),
            **{k: getattr(settings, k) for k in SETTINGS}}


@dataclass(frozen=True)
class _Shared:
    baseline: Baseline
    compute: Compute  # for an estimator's own jobs (shards, TRAK's ensemble): serial inside a pooled job
    shards: int = 1
    job_cache_root: str | None = None  # <root>/<estimator>: the job cache of an estimator's own jobs


def estimator_job(shared: _Shared, spec: dict) -> dict:
    """Executor job: one estimator over the shared baseline -> ``{"columns": {name: [floats]}, "diagnostics": {...}}``."""
    from sampleval.training.loop import pick_device

    b = shared.baseline
    method = spec["method"]
    options = {method: spec["options"]} if spec["options"] is not None else {}
    settings = InfluenceSettings(**{k: spec[k] for k in SETTINGS}, seed=spec["seed"], options=options)
    ctx = make_context(
        b, settings, device=pick_device(b.cfg.device), compute=shared.compute, shards=shared.shards,
        job_cache=f"{shared.job_cache_root}/{method}" if shared.job_cache_root is not None else None,
    )
    columns = run_estimator(method, ctx)
    return {"columns": {k: v.tolist() for k, v in columns.items()}, "diagnostics": ctx.diagnostics.get(method, {})}


def fans_out(method: str, shards: int) -> bool:
    """Whether ``method`` runs executor jobs of its own (then it runs in the calling process):
    its registry entry says ``fans_out``, or ``shards`` and there is more than one shard."""
    entry = get(method)
    return entry.fans_out or (entry.shards and shards > 1)


def run_estimators(baseline: Baseline, methods: list[str], settings: InfluenceSettings, compute: Compute = SERIAL,
                   shards: int = 1, cache: JobCache | None = None, job_cache_root: str | None = None) -> dict[str, EstimatorResult]:
    """Every estimator in ``methods`` over ``baseline``; returns name -> result, in ``methods``' order.

    ``settings``: what every estimator reads, the seed and the per-estimator options; ``shards``:
    training-set shards of ``tracin``/``self_influence``; ``cache``: finished estimators by key;
    ``job_cache_root``: where estimators that run jobs of their own cache them (``<root>/<name>``:
    TRAK's ensemble models, reused when only the baseline's checkpoints change)."""
    specs = {m: estimator_spec(m, settings) for m in methods}
    own = [m for m in methods if fans_out(m, shards)]
    pooled = [m for m in methods if m not in own]
    out: dict[str, dict] = {}
    if pooled:
        results = run_jobs(estimator_job, [specs[m] for m in pooled], compute, shared=_Shared(baseline, compute.serial(), 1, job_cache_root),
                           labels=pooled, desc="influence", cache=cache)
        out.update(zip(pooled, results))
    for m in own:  # one at a time, each fanning out over the whole executor
        out[m] = run_jobs(estimator_job, [specs[m]], SERIAL, shared=_Shared(baseline, compute, shards, job_cache_root), labels=[m], desc=m, cache=cache)[0]
    return {m: EstimatorResult({k: np.asarray(v, dtype=np.float64) for k, v in out[m]["columns"].items()}, out[m]["diagnostics"]) for m in methods}
