"""Evaluate a trained model on validation and test without letting test choose anything.

Multi-label thresholds are chosen per label on validation and only applied to test.
"""
from __future__ import annotations

import numpy as np
from torch import nn

from sampleval.data.prepared import Split
from sampleval.training.metrics import choose_thresholds, multiclass_metrics, multilabel_metrics, sigmoid
from sampleval.training.loop import predict_logits


def _val_thresholds(val_logits: np.ndarray, val: Split, task: str) -> np.ndarray | None:
    """Per-label F1 thresholds chosen on validation (multi-label only)."""
    return None if task == "multiclass" else choose_thresholds(sigmoid(val_logits.astype(np.float64)), val.y)


def _metrics(logits: np.ndarray, split: Split, task: str, classes: list[str], thresholds: np.ndarray | None) -> dict:
    if task == "multiclass":
        return multiclass_metrics(logits, split.y)
    return multilabel_metrics(logits, split.y, thresholds, classes)


def evaluate(model: nn.Module, val: Split, test: Split, task: str, classes: list[str], batch_size: int = 512, amp: bool = False) -> dict:
    val_logits = predict_logits(model, val.x, batch_size, amp=amp)
    test_logits = predict_logits(model, test.x, batch_size, amp=amp)
    thresholds = _val_thresholds(val_logits, val, task)
    out = {"val": _metrics(val_logits, val, task, classes, thresholds), "test": _metrics(test_logits, test, task, classes, thresholds)}
    if thresholds is not None:
        out["thresholds"] = {c: float(t) for c, t in zip(classes, thresholds)}
    return out


def epoch_metrics_fn(val: Split, task: str, classes: list[str]):
    """Per-epoch validation metrics for the training curve (thresholds chosen on val)."""

    def fn(val_logits: np.ndarray) -> dict:
        m = _metrics(val_logits, val, task, classes, _val_thresholds(val_logits, val, task))
        m.pop("per_label", None)
        return {f"val_{k}": v for k, v in m.items()}

    return fn
