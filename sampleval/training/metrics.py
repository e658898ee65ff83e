"""Classification metrics (scikit-learn where it has them).

Expected calibration error (ECE) uses ``n_bins`` equal-width confidence bins on [0, 1]
(default 15), weighting each bin's |accuracy - confidence| by its share of samples:

- multi-class: confidence = top-1 softmax probability, accuracy = top-1 correct;
- multi-label: each label is a binary problem with confidence = sigmoid probability of
  the positive class and outcome = the label; ECE is computed per label and averaged
  (``ece``), never on flattened probabilities.

Multi-label F1 uses one threshold per label, chosen on validation (see
:func:`choose_thresholds`) and passed in for the test set.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_curve, roc_auc_score


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if len(confidence) == 0:
        return float("nan")
    # bin b holds confidences in (b/n, (b+1)/n]; 0 goes to the first bin
    bins = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def multiclass_metrics(logits: np.ndarray, y: np.ndarray, n_bins: int = 15) -> dict:
    prob = softmax(np.asarray(logits, dtype=np.float64))
    pred = prob.argmax(axis=1)
    n_classes = prob.shape[1]
    present = np.unique(y)
    if len(present) == n_classes:
        auroc = roc_auc_score(y, prob, multi_class="ovr", average="macro")
    else:  # a subset may lack classes; AUROC over the classes present, one-vs-rest
        aucs = [roc_auc_score(y == c, prob[:, c]) for c in present] if len(present) > 1 else [float("nan")]
        auroc = float(np.mean(aucs))
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro", labels=np.arange(n_classes), zero_division=0)),
        "macro_auroc": float(auroc),
        "ece": expected_calibration_error(prob.max(axis=1), pred == y, n_bins),
    }


def choose_thresholds(prob: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-label threshold maximising F1 on the given (validation) data; entries of -1 are ignored.
    Labels without positives keep 0.5."""
    thresholds = np.full(prob.shape[1], 0.5)
    for j in range(prob.shape[1]):
        valid = y[:, j] >= 0
        yj, pj = y[valid, j] > 0.5, prob[valid, j]
        if yj.sum() == 0:
            continue
        precision, recall, cut = precision_recall_curve(yj, pj)
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        thresholds[j] = cut[int(np.argmax(f1))]
    return thresholds


def multilabel_metrics(logits: np.ndarray, y: np.ndarray, thresholds: np.ndarray, classes: list[str], n_bins: int = 15) -> dict:
    prob = sigmoid(np.asarray(logits, dtype=np.float64))
    y = np.asarray(y)
    pred = prob >= thresholds[None, :]
    per_auc, per_f1, per_ece, per_acc = {}, {}, {}, []
    for j, name in enumerate(classes):
        valid = y[:, j] >= 0  # -1 = ignored (uncertain) label
        yj, pj = y[valid, j] > 0.5, prob[valid, j]
        per_auc[name] = float(roc_auc_score(yj, pj)) if 0 < yj.sum() < len(yj) else float("nan")
        per_f1[name] = float(f1_score(yj, pred[valid, j], zero_division=0))
        per_ece[name] = expected_calibration_error(pj, yj, n_bins)
        per_acc.append(float((pred[valid, j] == yj).mean()) if valid.any() else float("nan"))
    return {
        "accuracy": float(np.nanmean(per_acc)),
        "macro_f1": float(np.mean(list(per_f1.values()))),
        "macro_auroc": float(np.nanmean(list(per_auc.values()))),
        "ece": float(np.mean(list(per_ece.values()))),
        "per_label": {"auroc": per_auc, "f1": per_f1, "ece": per_ece},
    }
