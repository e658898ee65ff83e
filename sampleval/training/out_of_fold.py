"""Out-of-fold predicted probabilities: the one cross-validation engine.

Every sample's probabilities come from a model that never saw it: the training samples are
assigned to K folds (:func:`fold_assignment`), each fold is an executor job
(:func:`sampleval.runtime.compute.run_jobs`) that fits on the other folds and predicts the
held-out one, and the probabilities are put back in sample order (:func:`out_of_fold_probs`).
A user supplies only its ``fit_predict(train_idx, held_out_idx, k)``:

- the pipeline's ``cleanlab`` estimator: a logistic regression
  (:func:`sampleval.influence.heuristics.cross_validated_probs`);
- the detection sweep's cleanlab: the audited CNN and its recipe (:mod:`sampleval.detection.oof`);
- multi-label detection: the audited CNN per fold, folds not stratified (:mod:`sampleval.detection.multilabel`);
- the library API for your own features: any scikit-learn classifier (:func:`sampleval.api.out_of_fold_probs`).

The fold rule: K folds shuffled with ``seed``, stratified by label (multi-class) or not
(multi-label); every class present needs at least K samples (and there must be at least K
samples), else a ValueError names ``key``, the params key that sets K. The folds are those
of scikit-learn's ``StratifiedKFold`` / ``KFold``, as ``cross_val_predict`` uses them.

A ``fit_predict`` run on a process pool or on Ray must pickle (a module-level class does, a
closure does not); results come back in fold order, so the numbers are the same at any
worker count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from sampleval.runtime.compute import SERIAL, Compute, run_jobs

FitPredict = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def fold_assignment(labels: np.ndarray, folds: int, seed: int, key: str = "folds", stratify: bool = True) -> np.ndarray:
    """The held-out fold of every sample: stratified by ``labels`` (or not), shuffled with ``seed``.
    ``key``: the params key that sets ``folds``, named when they do not fit the data."""
    from sklearn.model_selection import KFold, StratifiedKFold

    labels = np.asarray(labels)
    if folds < 2:
        raise ValueError(f"{key} must be at least 2, got {folds}")
    if stratify:
        smallest = int(np.unique(labels, return_counts=True)[1].min())
        if smallest < folds:
            fix = "lower it" if smallest >= 2 else "cross-validation needs at least 2 samples of every class present; drop or relabel that class"
            raise ValueError(f"a class has only {smallest} training samples, fewer than {key} = {folds}; {fix}")
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    else:
        if len(labels) < folds:
            raise ValueError(f"only {len(labels)} training samples, fewer than {key} = {folds}; lower it")
        cv = KFold(folds, shuffle=True, random_state=seed)
    out = np.empty(len(labels), dtype=np.int64)
    for k, (_, held_out) in enumerate(cv.split(np.zeros(len(labels)), labels)):
        out[held_out] = k
    return out


@dataclass(frozen=True)
class ClassifierFitPredict:
    """A scikit-learn classifier as the engine's ``fit_predict`` (what ``cross_val_predict`` does
    per fold): a fresh ``clone`` of ``classifier`` fitted on ``train_idx``, probabilities of
    ``held_out``. ``labels`` are 0..m-1 over the classes present (as ``cross_val_predict`` encodes
    them) and ``present`` maps them to ``n_classes`` columns (a class the fold's model did not see
    keeps probability 0, as in ``cross_val_predict``); ``present`` None: the classifier's columns
    as they are (multi-label: the label columns). A module-level class, so it pickles to pool
    workers and Ray tasks."""

    classifier: Any
    features: np.ndarray
    labels: np.ndarray
    n_classes: int
    present: np.ndarray | None = None

    def __call__(self, train_idx: np.ndarray, held_out: np.ndarray, k: int) -> np.ndarray:
        from sklearn.base import clone

        clf = clone(self.classifier).fit(self.features[train_idx], self.labels[train_idx])
        p = clf.predict_proba(self.features[held_out])
        if self.present is None:
            return p
        out = np.zeros((len(held_out), self.n_classes))
        out[:, self.present[np.asarray(clf.classes_)]] = p
        return out


def _fold_job(shared: tuple[FitPredict, np.ndarray], k: int) -> np.ndarray:
    """One fold (an executor job): fit on the other folds, predict fold ``k``."""
    fit_predict, fold = shared
    held_out, train_idx = np.flatnonzero(fold == k), np.flatnonzero(fold != k)
    return np.asarray(fit_predict(train_idx, held_out, k), dtype=np.float64)


def out_of_fold_probs(
    labels: np.ndarray, n_classes: int, fit_predict: FitPredict, folds: int = 5, seed: int = 0, compute: Compute = SERIAL,
    key: str = "folds", stratify: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(probs (n, n_classes), fold)``: ``fit_predict(train_idx, held_out_idx, k)`` fits on
    ``train_idx`` only (sorted sample indices) and returns float probabilities
    ``(len(held_out_idx), n_classes)`` for ``held_out_idx`` (sorted). The folds run as jobs
    of ``compute`` (:func:`fold_assignment` says which fold holds out which sample)."""
    fold = fold_assignment(labels, folds, seed, key, stratify)
    probs = np.full((len(fold), n_classes), np.nan)
    results = run_jobs(_fold_job, list(range(folds)), compute, shared=(fit_predict, fold),
                       labels=[f"fold {k} (seed {seed})" for k in range(folds)], desc="cleanlab folds")
    for k, p in enumerate(results):
        held_out = np.flatnonzero(fold == k)
        if p.shape != (len(held_out), n_classes):
            raise RuntimeError(f"fold {k}: probabilities of shape {p.shape}, expected {(len(held_out), n_classes)}")
        probs[held_out] = p
    return probs, fold
