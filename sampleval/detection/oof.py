"""cleanlab as its documentation recommends: out-of-fold predicted probabilities of the
model being audited, then ``cleanlab.rank.get_label_quality_scores`` (label quality,
``self_confidence``: the out-of-fold probability of the given label) and
``cleanlab.filter.find_label_issues`` (confident learning, ``prune_by_noise_rate``).

The out-of-fold probabilities come from K-fold cross-validation of the training split,
stratified by the given (noisy) labels and seeded: for each fold, a model of the same
class is trained with the same recipe (:func:`sampleval.training.loop.train`, best epoch on
the validation split, as the baseline) on the other K-1 folds and predicts the held-out
fold. Every sample's probabilities therefore come from a model that never saw it.

The folds are those of the one out-of-fold engine, :func:`sampleval.training.out_of_fold.out_of_fold_probs`
(its fold rule; the folds as jobs of ``compute``, by default here one after another, as a cell
job must): this module supplies the fit/predict, :class:`CnnFitPredict`, which pickles to pool
workers and Ray tasks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sampleval.training.out_of_fold import FitPredict


@dataclass
class CnnFitPredict:
    """The audited model's recipe as a ``fit_predict``: train on the fold's training part
    (best epoch on the validation split), softmax probabilities on the held-out part.
    A plain object of arrays and the recipe, so it pickles to pool workers and Ray tasks."""

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_classes: int
    cfg: Any  # sampleval.training.loop.TrainConfig
    seed: int

    def __call__(self, train_idx: np.ndarray, held_out: np.ndarray, k: int) -> np.ndarray:
        import torch

        from sampleval.training.loop import predict_logits, train

        result = train(self.x[train_idx], self.y[train_idx], self.x_val, self.y_val, "multiclass", self.n_classes, self.cfg, self.seed)
        logits = predict_logits(result.model, self.x[held_out])
        return torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()


def cnn_fit_predict(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, n_classes: int, cfg, seed: int) -> FitPredict:
    """The audited model's recipe as a ``fit_predict`` (:class:`CnnFitPredict`)."""
    return CnnFitPredict(x, y, x_val, y_val, n_classes, cfg, seed)


def cleanlab_scores(labels: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    """``quality`` (cleanlab.rank.get_label_quality_scores, defaults) and ``issue``
    (cleanlab.filter.find_label_issues, defaults, one process)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(labels, dtype=np.int64)
    quality = get_label_quality_scores(labels, probs)
    issue = find_label_issues(labels, probs, n_jobs=1)
    return {"quality": np.asarray(quality, dtype=np.float64), "issue": np.asarray(issue, dtype=bool)}


def noise_structure(labels: np.ndarray, probs: np.ndarray) -> dict:
    """The label noise's structure estimated without ground truth, from cleanlab's confident
    joint (``cleanlab.count.compute_confident_joint``, calibrated: ``C[given, true]`` counts
    summing to n) on out-of-fold probabilities. With ``O`` = C off its diagonal:

    - ``noise_rate``: ``sum(O) / n``, the estimated share of wrong labels;
    - ``top_pair_share``: the largest entry of ``O`` over ``sum(O)`` (1: every wrong label
      is one class pair, as 40 % of 9s -> 4);
    - ``source_concentration``: ``sum_true max_given O / sum(O)``, the share of the wrong
      labels that go to their true class's most frequent wrong label (1: each class is
      relabelled to one other class, systematic or asymmetric noise; about 1/(K-1) plus
      sampling noise for uniform noise).
    """
    from cleanlab.count import compute_confident_joint

    labels = np.asarray(labels, dtype=np.int64)
    joint = np.asarray(compute_confident_joint(labels, probs), dtype=np.float64)
    off = joint.copy()
    np.fill_diagonal(off, 0.0)
    total = float(off.sum())
    return {
        "confident_joint": np.rint(joint).astype(np.int64).tolist(),
        "noise_rate": total / float(joint.sum()) if joint.sum() > 0 else 0.0,
        "top_pair_share": float(off.max() / total) if total > 0 else 0.0,
        "source_concentration": float(off.max(axis=0).sum() / total) if total > 0 else 0.0,
    }
