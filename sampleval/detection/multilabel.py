"""Label-error detection for multi-label targets, one finding at a time.

A multi-label sample carries K independent annotations (one per finding), and each can be
wrong on its own: a report-mined label misses a nodule but gets the effusion right. So the
unit of detection is the *entry* ``(sample i, finding k)``, not the sample.

**Label-wise suspicion** (higher = more likely that entry is wrong)::

    suspicion[i, k] = -log p_ik        if y_ik = 1
                      -log (1 - p_ik)  if y_ik = 0

the per-label binary cross-entropy of the given label under predicted probabilities
``p_ik = sigmoid(logit_ik)``. It is the finding-``k`` term of the multi-label training loss
(whose negated sum over findings is the per-sample ``loss`` ranking), so it ranks the
entries of one finding by how strongly the model disagrees with the annotation.

With **out-of-fold** probabilities (K-fold cross-validation of the same model recipe:
each sample scored by a model that never trained on it) this is exactly what cleanlab's
multi-label API recommends: ``cleanlab.multilabel_classification.rank.
get_label_quality_scores_per_class(labels, pred_probs, method="self_confidence")`` returns,
per finding, the probability of the given annotation, ``exp(-suspicion)``, a monotone
transform of ours (same ranking; :func:`cleanlab_label_wise` is the peer and the tests
check the agreement). Its per-sample aggregate (``get_label_quality_scores``, an
exponential moving average of the sorted per-finding scores) ranks *samples*; we report
both. In-sample probabilities (the model that trained on the labels) memorise some errors
and rank worse; the comparison shows by how much.

Detection metrics per finding: AUROC and average precision (scikit-learn) for the flipped
entries of that finding, and the share of them found among the top 1/5/10/20 % most
suspicious entries. Findings without flips (or with every entry flipped) get NaN.
"""
from __future__ import annotations

import numpy as np

SHARES = (0.01, 0.05, 0.1, 0.2)
EPS = 1e-7


def label_wise_suspicion(pred_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-entry binary cross-entropy of the given labels, ``(N, K)``; see the module docstring."""
    p = np.clip(np.asarray(pred_probs, dtype=np.float64), EPS, 1 - EPS)
    y = np.asarray(labels)
    if p.shape != y.shape or p.ndim != 2:
        raise ValueError(f"pred_probs {p.shape} and labels {y.shape} must both be (N, K)")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("multi-label labels must be 0/1 (drop or impute ignored entries first)")
    return -np.log(np.where(y == 1, p, 1.0 - p))


def _label_lists(labels: np.ndarray) -> list[list[int]]:
    return [list(np.flatnonzero(row)) for row in np.asarray(labels)]


def cleanlab_label_wise(pred_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """cleanlab's per-finding suspicion, ``1 - get_label_quality_scores_per_class`` (self-confidence),
    ``(N, K)``, used as its documentation says: labels as lists of present class indices,
    ``pred_probs`` the (out-of-fold) per-class probabilities."""
    from cleanlab.multilabel_classification.rank import get_label_quality_scores_per_class

    per_class = get_label_quality_scores_per_class(_label_lists(labels), np.asarray(pred_probs, dtype=np.float64), method="self_confidence")
    # documented as a list of K arrays of shape (N,); cleanlab 2.9 returns an (N, K) array
    scores = np.stack(per_class, axis=1) if isinstance(per_class, list) else np.asarray(per_class)
    return 1.0 - scores


def cleanlab_sample_suspicion(pred_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """cleanlab's per-sample suspicion, ``1 - multilabel_classification.get_label_quality_scores``."""
    from cleanlab.multilabel_classification import get_label_quality_scores

    return 1.0 - get_label_quality_scores(_label_lists(labels), np.asarray(pred_probs, dtype=np.float64))


def detection_metrics(flags: np.ndarray, suspicion: np.ndarray, shares=SHARES) -> dict:
    """AUROC, average precision and the share of flagged items among the top ``share`` most
    suspicious (ties broken by position), for one binary flag vector."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    flags = np.asarray(flags, dtype=bool)
    s = np.asarray(suspicion, dtype=np.float64)
    if flags.shape != s.shape or flags.ndim != 1:
        raise ValueError(f"flags {flags.shape} and suspicion {s.shape} must be 1-D and of equal length")
    if not np.all(np.isfinite(s)):
        raise ValueError("suspicion scores contain NaN or inf")
    n, n_pos = len(flags), int(flags.sum())
    out = {"n": int(n), "n_flagged": n_pos}
    defined = 0 < n_pos < n
    out["auroc"] = float(roc_auc_score(flags, s)) if defined else float("nan")
    out["average_precision"] = float(average_precision_score(flags, s)) if defined else float("nan")
    order = np.lexsort((np.arange(n), -s))
    for share in shares:
        k = int(round(share * n))
        out[f"found_top_{round(100 * share):g}pct"] = float(flags[order[:k]].sum() / n_pos) if n_pos and k else float("nan")
    return out


def per_finding_detection(flipped: np.ndarray, suspicion: np.ndarray, classes: list[str]) -> dict:
    """:func:`detection_metrics` per finding (column), plus ``macro``: the mean over findings where
    AUROC is defined, and ``entries``: all entries pooled (one ranking over every (i, k))."""
    flipped = np.asarray(flipped, dtype=bool)
    suspicion = np.asarray(suspicion, dtype=np.float64)
    if flipped.shape != suspicion.shape or flipped.shape[1] != len(classes):
        raise ValueError(f"flipped {flipped.shape} and suspicion {suspicion.shape} must be (N, {len(classes)})")
    out = {name: detection_metrics(flipped[:, k], suspicion[:, k]) for k, name in enumerate(classes)}
    keys = [k for k in next(iter(out.values())) if k not in ("n", "n_flagged")]
    defined = [v for v in out.values() if np.isfinite(v["auroc"])]
    out["macro"] = {k: float(np.mean([v[k] for v in defined])) if defined else float("nan") for k in keys}
    out["entries"] = detection_metrics(flipped.ravel(), suspicion.ravel())
    return out


def out_of_fold_probs(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, cfg, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold sigmoid probabilities ``(N, K)`` for a multi-label training set: ``folds``
    seeded K-fold splits, not stratified (the one engine, :func:`sampleval.training.out_of_fold.out_of_fold_probs`);
    each fold's samples are scored by the same model recipe (:func:`sampleval.training.loop.train`,
    ``cfg``, seed ``seed + k`` for fold k) trained on the other folds, with ``x_val`` / ``y_val`` for epoch selection."""
    from sampleval.training.metrics import sigmoid
    from sampleval.training.loop import predict_logits, train
    from sampleval.training.out_of_fold import out_of_fold_probs as engine

    y = np.asarray(y)

    def fit_predict(train_idx: np.ndarray, held_out: np.ndarray, k: int) -> np.ndarray:
        res = train(x[train_idx], y[train_idx], x_val, y_val, "multilabel", y.shape[1], cfg, seed + k, flip_augment=True)
        return sigmoid(predict_logits(res.model, x[held_out]).astype(np.float64))

    return engine(y, y.shape[1], fit_predict, folds, seed, key="folds", stratify=False)[0]
