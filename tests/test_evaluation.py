"""Evaluation: metrics per split, multi-label thresholds chosen on validation only."""
import numpy as np
import torch
from sklearn.metrics import accuracy_score
from torch import nn

from sampleval.data.prepared import Split
from sampleval.training.evaluation import epoch_metrics_fn, evaluate


class Lookup(nn.Module):
    """Returns fixed logits per image: image i (pixel value i) -> logits[i]."""

    def __init__(self, logits: np.ndarray):
        super().__init__()
        self.table = nn.Parameter(torch.tensor(logits, dtype=torch.float32), requires_grad=False)

    def forward(self, x):
        idx = torch.round((x[:, 0, 0, 0] + 1) * 127.5).long()  # undo to_float
        return self.table[idx]


def _split(idx: np.ndarray, y: np.ndarray) -> Split:
    x = np.broadcast_to(idx.astype(np.uint8)[:, None, None, None], (len(idx), 1, 2, 2)).copy()
    return Split(x=x, y=y, ids=np.array([f"s{i}" for i in idx]), clean_y=y, flipped=np.zeros(len(idx), bool))


def test_multiclass_metrics_per_split():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 3))
    y = rng.integers(0, 3, 40)
    model = Lookup(logits)
    val, test = _split(np.arange(20), y[:20]), _split(np.arange(20, 40), y[20:])
    out = evaluate(model, val, test, "multiclass", ["a", "b", "c"])
    assert "thresholds" not in out
    assert out["val"]["accuracy"] == accuracy_score(y[:20], logits[:20].argmax(1))
    assert out["test"]["accuracy"] == accuracy_score(y[20:], logits[20:].argmax(1))


def test_multilabel_thresholds_come_from_validation_only():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(60, 2))
    y = (rng.random((60, 2)) < 0.5).astype(np.float32)
    model = Lookup(logits)
    val = _split(np.arange(30), y[:30])
    test_a = _split(np.arange(30, 60), y[30:])
    test_b = _split(np.arange(30, 60), 1 - y[30:])  # other test labels: same thresholds
    a = evaluate(model, val, test_a, "multilabel", ["x", "y"])
    b = evaluate(model, val, test_b, "multilabel", ["x", "y"])
    assert a["thresholds"] == b["thresholds"] and set(a["thresholds"]) == {"x", "y"}
    assert a["val"] == b["val"]


def test_epoch_metrics_are_prefixed_and_drop_per_label():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(20, 2))
    y = (rng.random((20, 2)) < 0.5).astype(np.float32)
    m = epoch_metrics_fn(_split(np.arange(20), y), "multilabel", ["x", "y"])(logits.astype(np.float32))
    assert m and all(k.startswith("val_") for k in m) and "val_per_label" not in m
