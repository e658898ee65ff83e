"""The detection rankings that are not in the influence registry, as registry-style
estimators (``estimate(ctx) -> {column: array}``, sign: positive = helpful), so that the
pipeline's ``influence`` stages and the subset cells can use them too. To register:

    REGISTRY["cleanlab_oof"] = "sampleval.detection.estimators:estimate_cleanlab_oof"
    REGISTRY["loss_cleanlab"] = "sampleval.detection.estimators:estimate_loss_cleanlab"

and pass the training recipe as ``ctx.extra['train_config']`` (a
:class:`sampleval.training.TrainConfig`; ``ctx.extra['cleanlab_folds']``, default 5;
``ctx.extra['compute']``, a :class:`sampleval.compute.Compute`, runs the folds as executor
jobs, default one after another here).
"""
from __future__ import annotations

import numpy as np

from ..compute import SERIAL
from .oof import cleanlab_scores, cnn_fit_predict, out_of_fold_probs
from .rankings import orient, rank_average


def estimate_cleanlab_oof(ctx) -> dict[str, np.ndarray]:
    """cleanlab's label quality on out-of-fold probabilities of the audited model's recipe,
    minus 0.5 (low quality = harmful, negative); ``cleanlab_oof_quality`` holds the raw score."""
    cfg = ctx.extra.get("train_config")
    if cfg is None:
        raise ValueError("cleanlab_oof needs the training recipe in ctx.extra['train_config'] (a TrainConfig)")
    if ctx.task != "multiclass":
        raise ValueError(f"cleanlab_oof supports multi-class tasks, not {ctx.task!r}")
    x, y = ctx.train.images, np.asarray(ctx.train.labels)
    fit_predict = cnn_fit_predict(x, y, ctx.val.images, np.asarray(ctx.val.labels), ctx.n_classes, cfg, int(ctx.seed))
    probs, _ = out_of_fold_probs(y, ctx.n_classes, fit_predict, int(ctx.extra.get("cleanlab_folds", 5)), int(ctx.seed), ctx.extra.get("compute") or SERIAL)
    quality = cleanlab_scores(y, probs)["quality"]
    return {"cleanlab_oof": quality - 0.5, "cleanlab_oof_quality": quality}


def estimate_loss_cleanlab(ctx) -> dict[str, np.ndarray]:
    """``loss_cleanlab``: the rank average of the training loss and cleanlab's
    out-of-fold quality (suspicion in [1/n, 1]), negated to the registry's sign."""
    from ..influence import run_estimator

    loss = run_estimator("loss", ctx)["loss"]
    cl = estimate_cleanlab_oof(ctx)
    suspicion = rank_average({"loss": orient("loss", loss), "cleanlab": 1.0 - cl["cleanlab_oof_quality"]}, ["loss", "cleanlab"])
    return {"loss_cleanlab": -suspicion, **cl}
