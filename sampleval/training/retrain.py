"""One recipe for the baseline and every subset cell: train, select on val, test once."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sampleval.data.prepared import Prepared, Split
from sampleval.training.evaluation import epoch_metrics_fn, evaluate
from sampleval.training.loop import TrainConfig, TrainResult, train


def subset_split(split: Split, keep: np.ndarray) -> Split:
    return Split(x=split.x[keep], y=split.y[keep], ids=split.ids[keep], clean_y=split.clean_y[keep], flipped=split.flipped[keep])


def train_and_evaluate(
    prepared: Prepared,
    cfg: TrainConfig,
    seed: int,
    keep: np.ndarray | None = None,
    ckpt_dir: str | Path | None = None,
    resume: bool = False,
    splits: tuple[Split, Split, Split] | None = None,
    progress=None,
) -> tuple[TrainResult, dict]:
    """Train on the training split (or its ``keep`` subset) and evaluate on val and test.
    ``progress(record)`` is called after every epoch (:func:`sampleval.training.loop.train`).

    Returns the training result and ``{'val': metrics, 'test': metrics[, 'thresholds']}``.
    """
    tr, va, te = splits or (prepared.split("train"), prepared.split("val"), prepared.split("test"))
    if keep is not None:
        tr = subset_split(tr, keep)
    result = train(
        tr.x,
        tr.y,
        va.x,
        va.y,
        prepared.task,
        prepared.n_classes,
        cfg,
        seed,
        ckpt_dir=ckpt_dir,
        resume=resume,
        flip_augment=prepared.task == "multilabel",  # mirror images are valid X-rays, not valid digits
        val_metrics=epoch_metrics_fn(va, prepared.task, prepared.classes),
        progress=progress,
    )
    return result, evaluate(result.model, va, te, prepared.task, prepared.classes, amp=cfg.amp)


def class_composition(split: Split, mask: np.ndarray, classes: list[str], task: str) -> dict[str, int]:
    """Per-class counts (given labels) of the samples in ``mask``."""
    y = split.y[mask]
    if task == "multilabel":
        return {c: int(n) for c, n in zip(classes, y.sum(axis=0))}
    return {c: int((y == i).sum()) for i, c in enumerate(classes)}
