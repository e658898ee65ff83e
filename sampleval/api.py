"""Score your own model's labels and training samples without the pipeline.

- :func:`label_issues`: cleanlab's label-issue table from the given labels and
  **out-of-fold** predicted probabilities (cleanlab's recommendation: every sample's
  probabilities from a model that did not train on it);
- :func:`out_of_fold_probs`: such probabilities from features by K-fold cross-validation
  (logistic regression by default, or any scikit-learn classifier);
- :func:`tracin_scores`: TracIn influence of every training sample on a validation set,
  from your PyTorch model and its checkpoints (the pipeline's fast aggregate TracIn).

Example::

    from sampleval import api
    probs = api.out_of_fold_probs(features, labels, folds=5)
    issues = api.label_issues(labels, probs, class_names=["cat", "dog"])
    issues.sort_values("rank").head(20)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def out_of_fold_probs(features, labels, folds: int = 5, seed: int = 0, classifier=None) -> np.ndarray:
    """``(n, n_classes)`` out-of-fold probabilities (columns: the classes present, in order):
    stratified K-fold shuffled with ``seed`` (the one engine,
    :func:`sampleval.training.out_of_fold.out_of_fold_probs`; the folds and numbers of scikit-learn's
    ``cross_val_predict``), each fold predicted by a ``classifier`` (default: scikit-learn's
    ``LogisticRegression(max_iter=1000)``) fitted on the others."""
    from sklearn.linear_model import LogisticRegression

    from sampleval.training.out_of_fold import ClassifierFitPredict, out_of_fold_probs as engine

    x = np.asarray(features, dtype=float).reshape(len(labels), -1)
    classes, y = np.unique(np.asarray(labels, dtype=int), return_inverse=True)
    fit_predict = ClassifierFitPredict(classifier if classifier is not None else LogisticRegression(max_iter=1000), x, y, len(classes))
    return engine(y, len(classes), fit_predict, folds, seed, key="folds")[0]


def label_issues(labels, pred_probs, class_names: Sequence[str] | None = None, filter_by: str = "prune_by_noise_rate",
                 method: str = "self_confidence") -> pd.DataFrame:
    """One row per sample, in the input order (cleanlab's ``find_label_issues`` table):

    ``given_label`` and ``suggested_label`` (the argmax of ``pred_probs``; class names when
    given), ``suggested_prob``, ``label_quality`` (``cleanlab.rank.get_label_quality_scores``
    with ``method``), ``score`` = 1 - quality (higher = more suspect), ``rank`` (1 = most
    suspect) and ``is_label_issue`` (``cleanlab.filter.find_label_issues`` with ``filter_by``).

    ``labels``: integer classes 0..K-1; ``pred_probs``: ``(n, K)`` out-of-fold probabilities
    (:func:`out_of_fold_probs`; in-sample probabilities of a model trained on these labels
    hide its own mistakes)."""
    import cleanlab.filter
    import cleanlab.rank

    y = np.asarray(labels, dtype=int)
    probs = np.asarray(pred_probs, dtype=float)
    if probs.ndim != 2 or len(probs) != len(y):
        raise ValueError(f"pred_probs must be (n, n_classes) with n = len(labels) = {len(y)}; got shape {probs.shape}")
    if y.min() < 0 or y.max() >= probs.shape[1]:
        raise ValueError(f"labels must be integers in 0..{probs.shape[1] - 1} (one column of pred_probs per class)")
    names = list(class_names) if class_names is not None else list(range(probs.shape[1]))
    if len(names) != probs.shape[1]:
        raise ValueError(f"class_names has {len(names)} names for {probs.shape[1]} columns of pred_probs")
    quality = cleanlab.rank.get_label_quality_scores(y, probs, method=method)
    issues = cleanlab.filter.find_label_issues(y, probs, filter_by=filter_by)
    k = probs.argmax(1)
    score = 1.0 - np.asarray(quality, dtype=float)
    order = np.argsort(-score, kind="stable")
    rank = np.empty(len(y), dtype=np.int64)
    rank[order] = np.arange(1, len(y) + 1)
    return pd.DataFrame({
        "given_label": [names[i] for i in y],
        "suggested_label": [names[i] for i in k],
        "suggested_prob": probs[np.arange(len(y)), k],
        "label_quality": np.asarray(quality, dtype=float),
        "score": score,
        "rank": rank,
        "is_label_issue": np.asarray(issues, dtype=bool),
    })


def tracin_scores(model, checkpoints, train, val, loss_fn=None, batch_size: int = 256, method: str = "central",
                  task: str = "multiclass") -> pd.DataFrame:
    """TracIn of every training sample on the summed validation loss (positive = helpful,
    negative = harmful: a suspect), summed over ``checkpoints``.

    ``model``: a ``torch.nn.Module`` of the architecture the checkpoints hold; ``checkpoints``:
    a list of ``(state_dict, learning_rate)`` pairs (or dicts with ``model`` and ``lr``, as
    this project saves them; paths to such files are read with ``weights_only=True``);
    ``train``, ``val``: ``(x, y)`` float input tensors and targets (class indices, or 0/1
    floats for ``task='multilabel'``); ``loss_fn``: ``loss_fn(logits, y, reduction='none'|'sum'|'mean')`` as torch's losses
    (default: cross-entropy, or binary cross-entropy summed over labels for multi-label).
    Returns one row per training sample: ``tracin``, ``suspicion`` (= -tracin) and one
    ``tracin_epoch_NNN`` column per checkpoint (numbered 1, 2, ... in the given order)."""
    import torch

    from sampleval.training.checkpoints import load_checkpoint
    from sampleval.influence.core import Checkpoint
    from sampleval.influence.tracin import tracin_scores as _tracin

    ckpts = []
    for i, c in enumerate(checkpoints, start=1):
        if isinstance(c, (str, bytes)) or hasattr(c, "__fspath__"):
            c = load_checkpoint(c)
        state, lr = (c["model"], c["lr"]) if isinstance(c, dict) and "model" in c else c
        ckpts.append(Checkpoint(epoch=i, lr=float(lr), state=state))
    if not ckpts:
        raise ValueError("tracin_scores needs at least one checkpoint")
    if loss_fn is None:
        if task == "multilabel":
            def loss_fn(z, y, reduction="mean"):
                per = torch.nn.functional.binary_cross_entropy_with_logits(z, y.to(z.dtype), reduction="none").sum(1)
                return {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
        else:
            def loss_fn(z, y, reduction="mean"):
                return torch.nn.functional.cross_entropy(z, y, reduction=reduction)
    out = _tracin(model, loss_fn, ckpts, tuple(train), tuple(val), batch_size=batch_size, progress=False, method=method)
    df = pd.DataFrame({"tracin": out["tracin"], "suspicion": -out["tracin"]})
    for key in sorted(k for k in out if k.startswith("tracin_epoch_")):
        df[key] = out[key]
    return df
