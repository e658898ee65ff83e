"""TRAK (Park et al. 2023) over an ensemble of independently trained models, from dattri (``trak``).

Each of ``influence.options.trak.models`` models is trained from scratch with the baseline's
recipe (the same :class:`~sampleval.training.loop.TrainConfig`, model selected on validation) and
its own seed (``seed + 1 + m``: never the baseline's own seed). For each model, dattri's
:class:`~dattri.algorithm.trak.TRAKAttributor` projects per-sample gradients of TRAK's model
output (the margin ``log p_y - log(1 - p_y)``; multi-label: the sum of the labels' signed
logits) with a seeded random projection on the CPU (``proj_dim``, seed = the model's seed) and
computes ``phi_val (Phi^T Phi + r I)^-1 Phi^T``; the ensemble averages these over models and
multiplies by the ensemble's mean ``Q = 1 - p_y`` per training sample, as TRAK (and dattri,
given a list of checkpoints) does. The score of a training sample is its summed attribution
over the validation samples. Positive = helpful (it raises the validation samples' margins).

Every model (its training and its projected features, reduced to two vectors per model) is a
job of :func:`sampleval.runtime.compute.run_jobs`, on ``ctx.compute`` (serial when None), and cached
with a :class:`~sampleval.runtime.compute.JobCache` in ``ctx.job_cache`` (the pipeline: ``data/jobs/trak``,
git-ignored, when ``compute.job_cache`` is true). The cache key hashes the job (seed,
recipe, projection dimension, regularisation), the training and validation data and the
library's source, so growing ``models`` from 10 to 20 trains only the 10 new models.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from pathlib import Path

import numpy as np
import torch

from sampleval.influence.core import record

log = logging.getLogger(__name__)


def data_fingerprint(shared: dict) -> str:
    """Hash of the data every job trains and scores on (the job cache's shared fingerprint)."""
    from sampleval.runtime.fingerprints import arrays_hash

    arrays = arrays_hash({k: shared[k] for k in ("x_train", "y_train", "x_val", "y_val")})
    return hashlib.sha256(f"{arrays}:{shared['task']}:{shared['n_classes']}".encode()).hexdigest()


def _output_functions(model: torch.nn.Module, task: str):
    """TRAK's model output (margin) and the probability of the given label, per sample."""
    from torch.func import functional_call

    def logits_of(params, x):
        return functional_call(model, params, (x.unsqueeze(0),))[0]

    if task == "multilabel":

        def margin(params, data):
            x, y = data
            z = logits_of(params, x)
            return ((2 * (y > 0.5).to(z.dtype) - 1) * z * (y >= 0).to(z.dtype)).sum()

        def p_correct(params, data):
            x, y = data
            p = torch.sigmoid(logits_of(params, x))
            t = (y > 0.5).to(p.dtype)
            return (t * p + (1 - t) * (1 - p)).mean()

    else:

        def margin(params, data):
            x, y = data
            logp = torch.log_softmax(logits_of(params, x), -1).gather(0, y.view(1))[0]  # no data-dependent indexing under vmap
            return logp - torch.log1p(-torch.exp(logp).clamp(max=1 - 1e-7))

        def p_correct(params, data):
            x, y = data
            return torch.softmax(logits_of(params, x), -1).gather(0, y.view(1))[0]

    return margin, p_correct


def trak_model_job(shared: dict, job: dict) -> dict:
    """One ensemble member: train with ``job['seed']`` and the recipe ``job['train']``, then
    its TRAK terms: ``xinv`` = summed over validation ``phi_val (Phi^T Phi + rI)^-1 Phi^T``
    and ``q`` = ``1 - p_y`` per training sample (JSON lists, for the job cache)."""
    from dattri.algorithm.trak import TRAKAttributor
    from dattri.task import AttributionTask

    from sampleval.training.loop import TrainConfig, train
    from sampleval.influence.core import as_inputs

    t0 = time.perf_counter()
    cfg = TrainConfig(**{**job["train"], "device": "cpu"})
    task = shared["task"]
    result = train(
        shared["x_train"], shared["y_train"], shared["x_val"], shared["y_val"], task, shared["n_classes"], cfg, job["seed"],
        flip_augment=task == "multilabel",
    )
    train_s = time.perf_counter() - t0
    model = result.model.cpu().float().eval()
    margin, p_correct = _output_functions(model, task)
    params = {k: v.detach() for k, v in model.named_parameters()}
    attr = TRAKAttributor(
        task=AttributionTask(loss_func=margin, model=model, checkpoints=params),
        correct_probability_func=p_correct,
        projector_kwargs={"proj_dim": int(job["proj_dim"]), "proj_max_batch_size": 32, "proj_seed": int(job["seed"]), "device": "cpu"},
        device="cpu",
        regularization=float(job["regularization"]),
    )
    xt, yt = as_inputs(shared["x_train"], shared["y_train"], task)
    xv, yv = as_inputs(shared["x_val"], shared["y_val"], task)
    bs = int(job["batch_size"])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xt, yt), batch_size=bs, shuffle=False)
    val_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xv, yv), batch_size=bs, shuffle=False)
    attr.cache(loader)
    q = attr.Q.detach().double().clone()
    attr.Q = torch.ones_like(attr.Q)  # the per-model term alone: the ensemble multiplies by its mean Q
    xinv = attr.attribute(val_loader).double().sum(1)  # (n_train, n_val) -> summed over validation
    best = next(h for h in result.history if h["epoch"] == result.best_epoch)
    return {
        "xinv": xinv.tolist(), "q": q.tolist(), "best_epoch": int(result.best_epoch), "val_loss": float(best["val_loss"]),
        "train_s": round(train_s, 3), "trak_s": round(time.perf_counter() - t0 - train_s, 3),
    }


def trak_scores(shared: dict, recipe, seeds: list[int], proj_dim: int = 512, regularization: float = 0.0, batch_size: int = 256,
                compute=None, cache_dir: str | Path | None = None) -> tuple[np.ndarray, dict]:
    """TRAK scores of every training sample (summed over validation) from an ensemble of
    models trained with ``seeds``; returns ``(scores, diagnostics)``."""
    from sampleval.runtime.compute import SERIAL, JobCache, run_jobs

    train_cfg = dataclasses.asdict(recipe) if dataclasses.is_dataclass(recipe) else dict(recipe)
    jobs = [{"seed": int(s), "train": train_cfg, "proj_dim": int(proj_dim), "regularization": float(regularization), "batch_size": int(batch_size)} for s in seeds]
    cache = JobCache(Path(cache_dir), data_fingerprint(shared)) if cache_dir is not None else None
    out = run_jobs(trak_model_job, jobs, compute or SERIAL, shared=shared, labels=[f"trak model seed {s}" for s in seeds], desc="trak ensemble", cache=cache)
    xinv = np.mean([np.asarray(r["xinv"], dtype=np.float64) for r in out], axis=0)
    q = np.mean([np.asarray(r["q"], dtype=np.float64) for r in out], axis=0)
    info = {
        "library": "dattri", "models": len(seeds), "seeds": f"{seeds[0]}..{seeds[-1]}", "proj_dim": int(proj_dim),
        "projector": "dattri random_project (CPU)", "regularization": float(regularization), "output": "margin",
    }  # no wall times: the diagnostics reach metrics/influence.json, which must be byte-reproducible
    return xinv * q, info


def shared_data(ctx) -> dict:
    """The jobs' shared input: the uint8 images and labels of both splits, task, classes."""
    from sampleval.influence.core import Samples

    if not isinstance(ctx.train, Samples) or not isinstance(ctx.val, Samples):
        raise ValueError("trak retrains models: it needs the splits as uint8 images (core.Samples), not float tensors")
    return {
        "x_train": np.asarray(ctx.train.images), "y_train": np.asarray(ctx.train.labels),
        "x_val": np.asarray(ctx.val.images), "y_val": np.asarray(ctx.val.labels), "task": ctx.task, "n_classes": int(ctx.n_classes),
    }


def ensemble_seeds(seed: int, models: int) -> list[int]:
    """The ensemble's training seeds: ``seed + 1 .. seed + models`` (never the baseline's own)."""
    return [seed + 1 + m for m in range(models)]


def estimate_trak(ctx) -> dict[str, np.ndarray]:
    """Registry entry: TRAK over ``influence.options.trak.models`` independently trained models."""
    opts = ctx.options_of("trak")
    try:
        import dattri  # noqa: F401
    except ImportError as exc:
        raise ImportError("trak needs dattri: pip install -e '.[peers]' (scripts/setup.sh installs it)") from exc
    scores, info = trak_scores(
        shared_data(ctx), ctx.train_config, ensemble_seeds(ctx.seed, opts.models), opts.proj_dim, opts.regularization, ctx.batch_size,
        ctx.compute, ctx.job_cache,
    )
    record(ctx, "trak", info)
    return {"trak": scores}
