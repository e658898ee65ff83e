"""Is a trained baseline better than chance? (A diverged or untrained model must not pass
as a good one: influence scores of a chance-level model rank nothing.)

- multi-class: validation accuracy must beat always predicting the majority class of the
  validation split (share ``p0``) by two binomial standard errors,
  ``p0 + 2 * sqrt(p0 * (1 - p0) / n_val)``: an accuracy below that is within sampling noise
  of a constant prediction (about a one-sided 2.5 % test);
- multi-label: validation macro AUROC must be above 0.55 (0.5 = a random ranking; with 14
  findings and a few hundred validation images a random model's macro AUROC stays within
  about 0.5 +- 0.03).

The library knows nothing of params: the stages pass ``checks.allow_chance_level``.
"""
from __future__ import annotations

import math

MULTILABEL_MIN_AUROC = 0.55


def chance_level(val_metrics: dict, task: str, val_class_counts: dict[str, int] | list[int]) -> str | None:
    """Why the validation metrics are at chance level, or None when they are above it.

    ``val_metrics``: the validation metrics the train stage recorded (``accuracy`` for
    multi-class, ``macro_auroc`` for multi-label); ``val_class_counts``: samples per class
    in the validation split (multi-class; the majority share is the chance level)."""
    if task == "multiclass":
        counts = list(val_class_counts.values()) if isinstance(val_class_counts, dict) else list(val_class_counts)
        n = sum(counts)
        if n == 0:
            return "the validation split is empty"
        p0 = max(counts) / n
        bar = p0 + 2 * math.sqrt(p0 * (1 - p0) / n)
        acc = val_metrics.get("accuracy")
        if acc is None or not math.isfinite(acc) or acc <= bar:
            return (
                f"validation accuracy {acc} is at chance level (majority class {p0:.3f} of {n} validation samples; "
                f"needs > {bar:.3f})"
            )
        return None
    auroc = val_metrics.get("macro_auroc")
    if auroc is None or not math.isfinite(auroc) or auroc <= MULTILABEL_MIN_AUROC:
        return f"validation macro AUROC {auroc} is at chance level (needs > {MULTILABEL_MIN_AUROC})"
    return None
