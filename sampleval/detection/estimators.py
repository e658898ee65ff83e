"""The detection rankings that are not in the influence registry, as estimators that follow the
registry's contract (``estimate(ctx) -> {column: array}``, sign: positive = helpful; entries of
the registry's :class:`~sampleval.influence.registry.Estimator` dataclass in :data:`ESTIMATORS`),
so that code holding an :class:`~sampleval.influence.context.InfluenceContext` (the subset cells,
a notebook) can compute them too.

They read the context as registry estimators do: the training recipe in ``ctx.train_config``
(set by :func:`sampleval.influence.core.make_context`), where the cleanlab folds run in
``ctx.compute`` (a :class:`sampleval.runtime.compute.Compute`; None: here, one after another)
and their options in ``ctx.options[name]`` (a dict or :class:`CleanlabOofOptions`; absent: the
defaults).

They stay out of the registry (``sampleval.influence.registry.ESTIMATORS``): its names are the
params' ``influence.methods``, ``influence.options`` and ``detect.rankings`` choices and the
README's estimator table, and the sweep computes its out-of-fold cleanlab in the cell itself
(:mod:`.cell`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sampleval.runtime.compute import SERIAL
from sampleval.detection.oof import cleanlab_scores, cnn_fit_predict
from sampleval.detection.rankings import orient, rank_average
from sampleval.influence.registry import SIGNED, Estimator, option, options_for
from sampleval.training.out_of_fold import out_of_fold_probs


@dataclass(frozen=True)
class CleanlabOofOptions:
    folds: int = option(5, lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= 2, "an integer >= 2 (K-fold cross-validation of the audited model's recipe)")


_M = "sampleval.detection.estimators:"
ESTIMATORS: dict[str, Estimator] = {
    e.name: e
    for e in [
        Estimator("cleanlab_oof", _M + "estimate_cleanlab_oof", SIGNED, CleanlabOofOptions, influence=False, fans_out=True, needs_recipe=True),
        Estimator("loss_cleanlab", _M + "estimate_loss_cleanlab", SIGNED, CleanlabOofOptions, influence=False, fans_out=True, needs_recipe=True),
    ]
}


def options_of(ctx, name: str):
    """Detection estimator ``name``'s options from ``ctx.options`` (the defaults overridden; every
    value checked, a bad one named), by the registry's rule."""
    return options_for(name, ctx.options.get(name), ESTIMATORS[name], where="detection options")


def _cleanlab_oof(ctx, name: str) -> dict[str, np.ndarray]:
    if ctx.train_config is None:
        raise ValueError(f"{name} retrains the audited model: the influence context has no train_config (make_context sets it)")
    if ctx.task != "multiclass":
        raise ValueError(f"{name} supports multi-class tasks, not {ctx.task!r}")
    x, y = ctx.train.images, np.asarray(ctx.train.labels)
    fit_predict = cnn_fit_predict(x, y, ctx.val.images, np.asarray(ctx.val.labels), ctx.n_classes, ctx.train_config, int(ctx.seed))
    folds = options_of(ctx, name).folds
    probs, _ = out_of_fold_probs(y, ctx.n_classes, fit_predict, folds, int(ctx.seed), ctx.compute or SERIAL, key=f"the {name} option folds")
    quality = cleanlab_scores(y, probs)["quality"]
    return {"cleanlab_oof": quality - 0.5, "cleanlab_oof_quality": quality}


def estimate_cleanlab_oof(ctx) -> dict[str, np.ndarray]:
    """cleanlab's label quality on out-of-fold probabilities of the audited model's recipe,
    minus 0.5 (low quality = harmful, negative); ``cleanlab_oof_quality`` holds the raw score."""
    return _cleanlab_oof(ctx, "cleanlab_oof")


def estimate_loss_cleanlab(ctx) -> dict[str, np.ndarray]:
    """``loss_cleanlab``: the rank average of the training loss and cleanlab's
    out-of-fold quality (suspicion in [1/n, 1]), negated to the registry's sign."""
    from sampleval.influence.runner import run_estimator

    loss = run_estimator("loss", ctx)["loss"]
    cl = _cleanlab_oof(ctx, "loss_cleanlab")
    suspicion = rank_average({"loss": orient("loss", loss), "cleanlab": 1.0 - cl["cleanlab_oof_quality"]}, ["loss", "cleanlab"])
    return {"loss_cleanlab": -suspicion, **cl}
