"""Focal loss with label smoothing, for multi-class and multi-label targets.

Multi-class (softmax). With K classes, smoothed target ``q = (1 - eps) * onehot(y) + eps / K``
(the same smoothing as ``torch.nn.functional.cross_entropy(label_smoothing=eps)``) and
predicted probabilities ``p = softmax(z)``::

    loss = - sum_k q_k * (1 - p_k) ** gamma * log p_k

so ``gamma = 0`` is exactly cross-entropy with label smoothing.

Multi-label (sigmoid). Each of the L targets is smoothed toward 0.5:
``t = y * (1 - eps) + 0.5 * eps``; with ``p = sigmoid(z)``::

    loss_l = - [w_l * t * (1 - p) ** gamma * log p + (1 - t) * p ** gamma * log(1 - p)]

summed over labels, where ``w_l`` is an optional per-label positive weight (the study
clamps ``n_neg / n_pos`` to [2, 8]). An optional ``mask`` zeroes ignored entries
(e.g. CheXpert's uncertain labels under the 'ignore' policy).

``reduction`` is 'none' (one value per sample), 'sum' or 'mean'.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}")


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Softmax focal loss with label smoothing; ``target`` holds class indices."""
    n_classes = logits.shape[-1]
    log_p = F.log_softmax(logits, dim=-1)
    onehot = torch.zeros_like(log_p).scatter(-1, target.unsqueeze(-1), 1.0)  # vmap-friendly one-hot
    q = onehot * (1.0 - label_smoothing) + label_smoothing / n_classes
    if gamma == 0:
        per_class = q * log_p
    else:
        per_class = q * (1.0 - log_p.exp()).clamp_min(0).pow(gamma) * log_p
    return _reduce(-per_class.sum(dim=-1), reduction)


def sigmoid_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    label_smoothing: float = 0.0,
    pos_weight: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Multi-label sigmoid focal loss, smoothing toward 0.5; ``target`` is multi-hot float."""
    t = target.to(logits.dtype) * (1.0 - label_smoothing) + 0.5 * label_smoothing
    log_p = F.logsigmoid(logits)
    log_1mp = F.logsigmoid(-logits)
    p = log_p.exp()
    pos = t * log_p
    neg = (1.0 - t) * log_1mp
    if gamma != 0:
        pos = pos * (1.0 - p).pow(gamma)
        neg = neg * p.pow(gamma)
    if pos_weight is not None:
        pos = pos * pos_weight
    per_label = -(pos + neg)
    if mask is not None:
        per_label = per_label * mask
    return _reduce(per_label.sum(dim=-1), reduction)


def clamped_pos_weight(y: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Per-label ``n_negative / n_positive`` clamped to [low, high] (labels with no positives get
    ``high``); entries of -1 (ignored) count as neither."""
    pos = (y == 1).sum(dim=0).to(torch.float32)
    neg = (y == 0).sum(dim=0).to(torch.float32)
    ratio = torch.where(pos > 0, neg / pos.clamp_min(1), torch.full_like(pos, high))
    return ratio.clamp(low, high)


class TrainingLoss:
    """The training loss as a picklable callable ``loss(logits, target, reduction)``.

    Used identically by training and by every influence estimator, so that influence
    is measured on the loss the model was trained with. Multi-label targets of -1 are
    ignored (CheXpert's uncertain labels under ``data.uncertainty: ignore``).
    """

    def __init__(self, task: str, gamma: float, label_smoothing: float, pos_weight: torch.Tensor | None = None):
        if task not in ("multiclass", "multilabel"):
            raise ValueError(f"task must be multiclass or multilabel, got {task!r}")
        self.task = task
        self.gamma = float(gamma)
        self.label_smoothing = float(label_smoothing)
        self.pos_weight = pos_weight

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        if self.task == "multiclass":
            return focal_loss(logits, target, self.gamma, self.label_smoothing, reduction)
        pw = None if self.pos_weight is None else self.pos_weight.to(logits.device, logits.dtype)
        mask = (target >= 0).to(logits.dtype)  # -1 marks an ignored (uncertain) label
        return sigmoid_focal_loss(logits, target.clamp_min(0), self.gamma, self.label_smoothing, pw, mask, reduction)
