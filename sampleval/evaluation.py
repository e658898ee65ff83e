"""Evaluate a trained model on validation and test without letting test choose anything.

Multi-label thresholds are chosen per label on validation and only applied to test.
"""
from __future__ import annotations

import numpy as np
from torch import nn

from .data.prepared import Split
from .metrics import choose_thresholds, multiclass_metrics, multilabel_metrics, sigmoid
from .training import predict_logits


def evaluate(model: nn.Module, val: Split, test: Split, task: str, classes: list[str], batch_size: int = 512, amp: bool = False) -> dict:
    val_logits = predict_logits(model, val.x, batch_size, amp=amp)
    test_logits = predict_logits(model, test.x, batch_size, amp=amp)
    if task == "multiclass":
        return {"val": multiclass_metrics(val_logits, val.y), "test": multiclass_metrics(test_logits, test.y)}
    thresholds = choose_thresholds(sigmoid(val_logits.astype(np.float64)), val.y)
    return {
        "val": multilabel_metrics(val_logits, val.y, thresholds, classes),
        "test": multilabel_metrics(test_logits, test.y, thresholds, classes),
        "thresholds": {c: float(t) for c, t in zip(classes, thresholds)},
    }


def epoch_metrics_fn(val: Split, task: str, classes: list[str]):
    """Per-epoch validation metrics for the training curve (thresholds chosen on val)."""

    def fn(val_logits: np.ndarray) -> dict:
        if task == "multiclass":
            m = multiclass_metrics(val_logits, val.y)
        else:
            th = choose_thresholds(sigmoid(val_logits.astype(np.float64)), val.y)
            m = multilabel_metrics(val_logits, val.y, th, classes)
            m.pop("per_label")
        return {f"val_{k}": v for k, v in m.items()}

    return fn
