"""Detection metrics for one ranking of the training samples against the flipped flag.

Every ranking here is a *suspicion* score: higher = more likely a wrong label.

- :func:`detection_metrics`: AUROC and average precision (scikit-learn), the share of the
  flips found when inspecting the top 1, 5, 10 and 20 % of the ranking, and the share
  found / false-positive rate at the labeling-bias paper's threshold (0.5, see below).
- :func:`threshold_curve`: the labeling-bias paper's detection curve (seed 002, Fig. 3b):
  the share of flipped and of non-flipped samples whose score *exceeds* a threshold,
  against the threshold.

Our reading of the paper's threshold: it thresholds the average influence score at
"positive influence thresholds" (0, then "a small step up to 0.5"), positive = harmful,
on its own raw scale, which is arbitrary (it depends on the model, the loss and the
number of test points averaged). We keep its two anchors, 0 (harmful vs helpful) and a
fraction of the scale, by normalising the suspicion score by its largest value:
``u = s / max(s)`` (when ``max(s) > 0``; else ``s / max|s|``), so the most suspicious
sample has ``u = 1``, samples with helpful (negative) signed influence stay below 0 and
are never flagged, and a non-negative score (loss, self-influence, 1 - cleanlab quality)
maps onto [0, 1]. A sample is flagged at threshold ``t`` when ``u > t`` ("exceeding").
The paper's headline is read at ``t = 0.5``: about 90 % of flips found at 0.40 % of the
non-flipped samples (its false-positive rate).
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

INSPECT_SHARES = (0.01, 0.05, 0.1, 0.2)
PAPER_THRESHOLD = 0.5
THRESHOLDS = np.round(np.linspace(0.0, 1.0, 51), 4)


def normalise(suspicion: np.ndarray) -> np.ndarray:
    """``s / max(s)`` (``s / max|s|`` when no score is positive); all zeros stay zeros."""
    s = np.asarray(suspicion, dtype=np.float64)
    top = s.max() if s.size else 0.0
    scale = top if top > 0 else np.abs(s).max(initial=0.0)
    return s / scale if scale > 0 else np.zeros_like(s)


def _check(flipped: np.ndarray, suspicion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flipped = np.asarray(flipped, dtype=bool)
    suspicion = np.asarray(suspicion, dtype=np.float64)
    if flipped.shape != suspicion.shape or flipped.ndim != 1:
        raise ValueError(f"flipped {flipped.shape} and suspicion {suspicion.shape} must be 1-D arrays of one length")
    if not np.isfinite(suspicion).all():
        raise ValueError("a detection score has NaN or infinite values; the estimator that produced it failed")
    return flipped, suspicion


def threshold_curve(flipped: np.ndarray, suspicion: np.ndarray, thresholds: np.ndarray = THRESHOLDS) -> dict[str, np.ndarray]:
    """Share of flipped (``found``) and non-flipped (``fpr``) samples with normalised score > t."""
    flipped, suspicion = _check(flipped, suspicion)
    u = normalise(suspicion)
    above = u[None, :] > np.asarray(thresholds, dtype=np.float64)[:, None]
    n_pos, n_neg = flipped.sum(), (~flipped).sum()
    found = above[:, flipped].sum(1) / n_pos if n_pos else np.full(len(thresholds), np.nan)
    fpr = above[:, ~flipped].sum(1) / n_neg if n_neg else np.full(len(thresholds), np.nan)
    return {"threshold": np.asarray(thresholds, dtype=np.float64), "found": found, "fpr": fpr}


def inspection_curve(flipped: np.ndarray, suspicion: np.ndarray, n_points: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """Share of flips found against the share of the training set inspected, most suspicious
    first (ties in the order of the samples), on a grid of ``n_points`` shares."""
    flipped, suspicion = _check(flipped, suspicion)
    order = np.argsort(-suspicion, kind="stable")
    found = np.concatenate([[0.0], np.cumsum(flipped[order])]) / max(int(flipped.sum()), 1)
    inspected = np.arange(len(found)) / max(len(flipped), 1)
    grid = np.linspace(0, 1, n_points)
    return grid, np.interp(grid, inspected, found)


def top_k(suspicion: np.ndarray, share: float) -> np.ndarray:
    """Indices of the ``round(share * n)`` most suspicious samples (ties: sample order)."""
    s = np.asarray(suspicion, dtype=np.float64)
    k = int(round(share * len(s)))
    return np.argsort(-s, kind="stable")[:k]


def detection_metrics(flipped: np.ndarray, suspicion: np.ndarray) -> dict[str, float]:
    """AUROC, average precision, share found in the top 1/5/10/20 %, and the paper's
    threshold operating point. Empty when there is nothing (or everything) to find."""
    flipped, suspicion = _check(flipped, suspicion)
    n_pos = int(flipped.sum())
    if n_pos == 0 or n_pos == len(flipped):
        return {}
    out = {
        "auroc": float(roc_auc_score(flipped, suspicion)),
        "average_precision": float(average_precision_score(flipped, suspicion)),
    }
    for share in INSPECT_SHARES:
        out[f"found_top_{round(share * 100)}pct"] = float(flipped[top_k(suspicion, share)].sum() / n_pos)
    curve = threshold_curve(flipped, suspicion, np.array([PAPER_THRESHOLD]))
    out["found_at_threshold_0.5"] = float(curve["found"][0])
    out["fpr_at_threshold_0.5"] = float(curve["fpr"][0])
    return out


def flag_metrics(flipped: np.ndarray, flagged: np.ndarray) -> dict[str, float | int]:
    """Precision and recall of a set of flagged samples (for example cleanlab's
    ``find_label_issues``) against the flipped flag."""
    flipped = np.asarray(flipped, dtype=bool)
    flagged = np.asarray(flagged, dtype=bool)
    hits = int((flipped & flagged).sum())
    return {
        "n_flagged": int(flagged.sum()),
        "precision": float(hits / flagged.sum()) if flagged.any() else float("nan"),
        "recall": float(hits / flipped.sum()) if flipped.any() else float("nan"),
        "fpr": float((flagged & ~flipped).sum() / (~flipped).sum()) if (~flipped).any() else float("nan"),
    }


def jaccard_top(ids_a: np.ndarray, susp_a: np.ndarray, ids_b: np.ndarray, susp_b: np.ndarray, share: float = 0.05) -> float:
    """Jaccard overlap of the top-``share`` sample ids of two rankings, over the ids both rank
    (each ranking is restricted to the common ids before its top share is taken)."""
    ids_a, ids_b = np.asarray(ids_a).astype(str), np.asarray(ids_b).astype(str)
    common = np.intersect1d(ids_a, ids_b)
    if len(common) == 0:
        raise ValueError("the two rankings share no sample ids")

    def top(ids, susp):
        keep = np.isin(ids, common)
        ids, susp = ids[keep], np.asarray(susp, dtype=np.float64)[keep]
        return set(ids[top_k(susp, share)])

    a, b = top(ids_a, susp_a), top(ids_b, susp_b)
    union = a | b
    return float(len(a & b) / len(union)) if union else 1.0
