"""S-shapedness of sorted influence scores, as the TracIn text paper (seed 003) defines it.

Sort the scores in **descending** order and plot them against their rank (top-left point:
the largest score, bottom-right: the smallest). The index is

    slope of the least-squares line through the sorted scores
    - slope of the line through the two end points

and a **larger** value means **more S-shaped**. In an S shape most scores sit in a flat
middle and a few form steep tails at both ends, so the fitted line is flatter than the
end-point line (both slopes are negative): index > 0. A straight ("backslash") line gives
0; a Z shape (flat top and bottom, a steep drop in the middle: many samples with large
absolute scores) gives a fitted line steeper than the end-point line: index < 0.

x-axis: ranks scaled to [0, 1] (``rank / (n - 1)``), so the index is in the scores' own
units and does not grow or shrink with the number of training samples; with raw ranks
(0..n-1) as the x-axis, as in the paper's figure, the index is this value / (n - 1), with
the same sign and the same order between curves of equal n. The scores are not
normalised (the paper's index is not): compare indices of one estimator and scale.

The paper computes the index per misclassified test instance, from the TracIn scores of
every training sample for that one instance. :func:`per_sample_tracin` does that for our
misclassified *validation* samples (the test set is never used for influence), with a
per-sample validation gradient instead of the summed one; :func:`aggregate_and_per_sample`
also gives the index of the aggregate score (summed over the validation set), and the
paper's "position of the flipped instances" (mean distance from the centre of the
ranking, 0 = centre, 1 = either end) for each misclassified sample.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: the aggregate index (scores stage) needs numpy only
    from torch import nn

    from sampleval.influence.core import Checkpoint

log = logging.getLogger(__name__)


def s_shapedness(scores: np.ndarray) -> float:
    """Seed 003's S-shapedness index of ``scores`` (see the module docstring): sorted
    descending against ranks scaled to [0, 1], least-squares slope minus end-point slope.
    Larger = more S-shaped; 0 for a straight line, fewer than 3 scores or constant scores."""
    y = np.sort(np.asarray(scores, dtype=float).ravel())[::-1]
    if len(y) < 3 or y[0] == y[-1]:
        return 0.0
    if not np.isfinite(y).all():
        raise ValueError("S-shapedness needs finite scores; found NaN or infinity")
    x = np.linspace(0.0, 1.0, len(y))
    fit_slope = float(np.polyfit(x, y, 1)[0])
    end_slope = float(y[-1] - y[0])  # over an x-range of 1
    return fit_slope - end_slope


def flipped_distance_from_centre(scores: np.ndarray, flipped: np.ndarray) -> float:
    """Seed 003's position of the flipped instances: each flipped sample's rank in the
    sorted scores as a distance from the centre (0 at the centre, 1 at either end),
    averaged. NaN when nothing is flipped."""
    flipped = np.asarray(flipped, bool)
    if not flipped.any():
        return math.nan
    n = len(scores)
    rank = np.empty(n)
    rank[np.argsort(-np.asarray(scores, float), kind="stable")] = np.arange(n)
    centre = (n - 1) / 2
    return float(np.mean(np.abs(rank[flipped] - centre) / centre)) if centre > 0 else math.nan


def misclassified(model: "nn.Module", x_val, y_val: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Indices of the validation samples the model gets wrong (multi-class: argmax != label)."""
    from sampleval.training.loop import predict_logits  # no-grad inside

    logits = predict_logits(model, x_val, batch_size=batch_size)
    return np.flatnonzero(logits.argmax(1) != np.asarray(y_val))


def per_sample_tracin(
    model: "nn.Module",
    loss_fn: Callable,
    checkpoints: Sequence["Checkpoint"],
    train: tuple,
    val: tuple,
    val_indices: Sequence[int],
    batch_size: int = 256,
    method: str = "central",
) -> np.ndarray:
    """TracIn of every training sample for each validation sample in ``val_indices``:
    ``sum_c lr_c * grad L(z_i; theta_c) . grad L(z_v; theta_c)``, shape (len(val_indices), n_train), float64.

    Built from the public pieces of :mod:`sampleval.influence.tracin`: per checkpoint, the
    gradient of one validation sample (:func:`summed_gradient` on that sample alone), then
    every training sample's directional derivative along it. Cost: one training-set pass
    (about two forward passes per sample with ``central``) per checkpoint and per validation
    sample, so use it for the few misclassified samples. ``train`` and ``val`` are
    ``(x, y)`` pairs, ``x`` uint8 images or model-ready tensors, ``y`` target tensors."""
    from sampleval.influence.core import directional_derivatives, summed_gradient

    xt, yt = train
    xv, yv = val
    val_indices = [int(j) for j in val_indices]
    out = np.zeros((len(val_indices), len(xt)), dtype=np.float64)
    for ckpt in checkpoints:
        model.load_state_dict(ckpt.state)
        model.eval()
        for row, j in enumerate(val_indices):
            g = summed_gradient(model, loss_fn, xv[j : j + 1], yv[j : j + 1], batch_size=1)
            out[row] += ckpt.lr * directional_derivatives(model, loss_fn, g, xt, yt, batch_size=batch_size, method=method).numpy()
    return out


def summarise(index: np.ndarray) -> dict:
    """Mean, median, range and share > 0 (S rather than Z) of per-sample indices."""
    v = np.asarray(index, float)
    if len(v) == 0:
        return {"n": 0}
    return {"n": int(len(v)), "mean": float(v.mean()), "median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()),
            "share_s_shaped": float((v > 0).mean())}


def aggregate_and_per_sample(
    table_scores: dict[str, np.ndarray], per_val: np.ndarray, val_ids: Sequence[str], flipped: np.ndarray | None = None
) -> dict:
    """The metrics of the ``shapes-index`` stage: the index of each aggregate score column
    in ``table_scores``, and per misclassified validation sample (rows of ``per_val``) its
    index and, when ``flipped`` is known, the flipped samples' distance from the centre."""
    out: dict = {
        "definition": "sorted descending, ranks scaled to [0, 1]; slope of the least-squares line minus slope of the end-point line; larger = more S-shaped",
        "aggregate": {name: s_shapedness(v) for name, v in table_scores.items()},
    }
    idx = np.array([s_shapedness(row) for row in per_val]) if len(per_val) else np.zeros(0)
    per = {"summary": summarise(idx), "samples": {str(v): {"index": float(i)} for v, i in zip(val_ids, idx)}}
    if flipped is not None and np.asarray(flipped).any():
        dist = np.array([flipped_distance_from_centre(row, flipped) for row in per_val])
        for v, d in zip(val_ids, dist):
            per["samples"][str(v)]["flipped_distance_from_centre"] = float(d)
        agg = {name: flipped_distance_from_centre(v, flipped) for name, v in table_scores.items()}
        out["aggregate_flipped_distance_from_centre"] = agg
        if len(idx) >= 3 and np.ptp(idx) > 0 and np.ptp(dist) > 0:
            from scipy.stats import spearmanr

            per["spearman_index_vs_flipped_distance"] = float(spearmanr(idx, dist).statistic)
    out["per_misclassified_val"] = per
    return out
