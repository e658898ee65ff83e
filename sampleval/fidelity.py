"""Ground truth for influence estimators: retraining without samples.

- :func:`leave_one_out`: retrain without each of a fixed random sample of training
  points (same seeds, same recipe) and measure the actual change in the summed
  validation loss. ``loss_increase = val_loss_without - val_loss_full`` has the sign of
  our influence scores: removing a helpful sample (positive score) raises the loss.
- :func:`random_subsets` + :func:`subset_val_losses` + :func:`linear_datamodeling_score`:
  the linear datamodeling score (Park et al., TRAK, 2023) over random 50 % subsets: the
  Spearman correlation, across subsets S, between the predicted group effect
  ``sum_{i in S} score_i`` and minus the summed validation loss of the model retrained
  on S. Our scores are aggregate over the validation set, so the target is the summed
  validation loss rather than TRAK's per-test-sample losses.
- :func:`correlations`: Pearson and Spearman (scipy) with their p-values.

Every retraining uses :func:`sampleval.training.train` with the given
:class:`~sampleval.training.TrainConfig`, scores the model selected on validation (as
the pipeline does) and sums the training loss over the validation set. Note that with
minibatch SGD, removing one sample reshuffles every later batch, so leave-one-out
differences of a network carry training noise of the same order as the effect;
averaging over several ``seeds`` reduces it.
"""
from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from .training import TrainConfig, predict_logits, target_tensor, train

log = logging.getLogger(__name__)


def sample_points(n: int, k: int, seed: int) -> np.ndarray:
    """``k`` distinct training indices drawn with ``seed``, sorted (a fixed random sample)."""
    if not 0 < k <= n:
        raise ValueError(f"cannot draw {k} points from {n} training samples")
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def summed_val_loss(result, x_val: np.ndarray, y_val: np.ndarray, task: str) -> float:
    """Summed training loss of a :class:`~sampleval.training.TrainResult`'s selected model on validation."""
    logits = torch.from_numpy(predict_logits(result.model, x_val)).double()
    return float(result.loss_fn(logits, target_tensor(y_val, task), reduction="sum"))


def _fit_loss(mask, x_train, y_train, x_val, y_val, task, n_outputs, cfg, seeds, trainer) -> float:
    losses = []
    for s in seeds:
        res = trainer(x_train[mask], y_train[mask], x_val, y_val, task, n_outputs, cfg, seed=int(s))
        losses.append(summed_val_loss(res, x_val, y_val, task))
    return float(np.mean(losses))


def _seeds(seed: int | Sequence[int]) -> list[int]:
    return [int(seed)] if np.isscalar(seed) else [int(s) for s in seed]


def leave_one_out(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    task: str,
    n_outputs: int,
    cfg: TrainConfig,
    indices: Sequence[int],
    seed: int | Sequence[int] = 0,
    trainer: Callable = train,
) -> pd.DataFrame:
    """Retrain without each training index in ``indices``.

    Returns one row per index: ``index``, ``val_loss_full`` (all samples), ``val_loss_without``
    and ``loss_increase = val_loss_without - val_loss_full`` (summed validation losses,
    averaged over the seeds when ``seed`` is a list)."""
    seeds = _seeds(seed)
    n = len(x_train)
    full = _fit_loss(np.ones(n, bool), x_train, y_train, x_val, y_val, task, n_outputs, cfg, seeds, trainer)
    rows = []
    for i in indices:
        if not 0 <= int(i) < n:
            raise ValueError(f"leave-one-out index {i} is outside 0..{n - 1}")
        mask = np.ones(n, bool)
        mask[int(i)] = False
        without = _fit_loss(mask, x_train, y_train, x_val, y_val, task, n_outputs, cfg, seeds, trainer)
        rows.append((int(i), full, without, without - full))
        log.info("leave-one-out %d: validation loss %.6g -> %.6g", int(i), full, without)
    return pd.DataFrame(rows, columns=["index", "val_loss_full", "val_loss_without", "loss_increase"])


def random_subsets(n: int, n_subsets: int, fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """Boolean masks (n_subsets, n), each keeping exactly ``round(fraction * n)`` samples."""
    if not 0 < fraction < 1:
        raise ValueError(f"subset fraction must be in (0, 1), got {fraction}")
    size = int(round(fraction * n))
    if size < 1:
        raise ValueError(f"a {fraction:.0%} subset of {n} samples is empty")
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_subsets, n), bool)
    for m in range(n_subsets):
        masks[m, rng.choice(n, size=size, replace=False)] = True
    return masks


def subset_val_losses(
    masks: np.ndarray,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    task: str,
    n_outputs: int,
    cfg: TrainConfig,
    seed: int | Sequence[int] = 0,
    trainer: Callable = train,
) -> np.ndarray:
    """Summed validation loss of the model retrained on each subset (one per mask row)."""
    seeds = _seeds(seed)
    return np.array([_fit_loss(m, x_train, y_train, x_val, y_val, task, n_outputs, cfg, seeds, trainer) for m in np.asarray(masks, bool)])


def linear_datamodeling_score(scores: np.ndarray, masks: np.ndarray, val_losses: np.ndarray) -> float:
    """Spearman correlation between ``masks @ scores`` (predicted benefit of each subset)
    and ``-val_losses`` (actual benefit). 1 = the scores rank subsets perfectly."""
    masks = np.asarray(masks, bool)
    scores = np.asarray(scores, float)
    val_losses = np.asarray(val_losses, float)
    if masks.shape != (len(val_losses), len(scores)):
        raise ValueError(f"masks {masks.shape} must be (n_subsets={len(val_losses)}, n_train={len(scores)})")
    return correlations(masks.astype(float) @ scores, -val_losses)["spearman"]


def correlations(predicted, actual) -> dict:
    """Pearson and Spearman correlations (and two-sided p-values) between two 1-D arrays;
    NaN where undefined (fewer than 3 pairs or a constant input)."""
    from scipy import stats

    p = np.asarray(predicted, float)
    a = np.asarray(actual, float)
    if p.shape != a.shape or p.ndim != 1:
        raise ValueError(f"predicted {p.shape} and actual {a.shape} must be 1-D arrays of the same length")
    out = {"n": int(len(p)), "pearson": np.nan, "pearson_p": np.nan, "spearman": np.nan, "spearman_p": np.nan}
    if len(p) < 3 or np.ptp(p) == 0 or np.ptp(a) == 0:
        return out
    r = stats.pearsonr(p, a)
    s = stats.spearmanr(p, a)
    out.update(pearson=float(r.statistic), pearson_p=float(r.pvalue), spearman=float(s.statistic), spearman_p=float(s.pvalue))
    return out
