"""Which TracIn checkpoints to sum: ``all``, ``up_to_selected``, ``burn_in_K``.

Our TracIn writes one lr-weighted column per checkpoint, ``tracin_epoch_NNN`` =
``lr_c * grad L(z_i; theta_c) . G_c`` (:func:`sampleval.influence.tracin.tracin_scores`
multiplies each contribution by the checkpoint's learning rate before storing it), and
``tracin`` is their sum. A variant is a sum over a subset of those columns, so every
variant can be computed from ``scores.parquet`` without touching a model:

- ``all``: every checkpoint (the TracIn paper's sum);
- ``up_to_selected``: checkpoints 1..e*, where e* is the epoch selected on validation
  (the model that is deployed never saw the later ones);
- ``burn_in_K`` (K >= 1): skip the first K checkpoints. Early checkpoints of a barely
  trained model carry the largest learning rates and gradients and can dominate the sum
  (issue 16: at ``seed: 1`` epochs 1-2 inverted the ranking).

The same names serve an estimator option that chooses checkpoints before computing
(:func:`select_epochs` on the list of checkpoint epochs) and the fidelity stage, which
compares the variants against retraining (:func:`variant_scores` on the table).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from sampleval.influence import registry

EPOCH_COLUMN = re.compile(r"tracin_epoch_(\d{3,})")


def check_variant(variant: str) -> str:
    """``variant`` itself if it names a variant (:func:`sampleval.influence.registry.is_tracin_variant`),
    else ValueError naming the allowed forms."""
    if registry.is_tracin_variant(variant):
        return variant
    raise ValueError(f"unknown TracIn checkpoint variant {variant!r}; use {registry.TRACIN_VARIANTS_ALLOWED}")


def parse_variant(variant: str) -> tuple[str, int]:
    """A variant's name as the tracin estimator's options ``(checkpoints, burn_in)``:
    ``all`` -> (all, 0), ``up_to_selected`` -> (up_to_selected, 0), ``burn_in_K`` -> (all, K)."""
    check_variant(variant)
    prefix = registry.TRACIN_BURN_IN
    return ("all", int(variant[len(prefix):])) if variant.startswith(prefix) else (variant, 0)


def select_epochs(epochs: Sequence[int], variant: str, selected_epoch: int | None = None) -> list[int]:
    """The checkpoint epochs ``variant`` sums over (the rule itself is
    :func:`sampleval.influence.registry.checkpoint_epochs`, which the estimator option uses too).

    ``selected_epoch`` (the epoch chosen on validation) is needed by ``up_to_selected``.
    Raises ValueError when the variant leaves no checkpoint."""
    checkpoints, burn_in = parse_variant(variant)
    epochs = [int(e) for e in epochs]
    if checkpoints == "up_to_selected" and selected_epoch is None:
        raise ValueError("TracIn variant up_to_selected needs the selected epoch (best validation loss)")
    if burn_in >= len(epochs):
        raise ValueError(f"TracIn variant {variant} keeps none of the checkpoints {epochs}; choose fewer skipped epochs")
    # burn_in counts checkpoints from the first one, whatever its epoch number
    skip = sorted(epochs)[burn_in - 1] if burn_in else 0
    return registry.checkpoint_epochs(epochs, checkpoints, skip, None if selected_epoch is None else int(selected_epoch))


def epoch_columns(columns: Sequence[str]) -> dict[int, str]:
    """``{epoch: column}`` for the ``tracin_epoch_NNN`` columns among ``columns``."""
    out = {}
    for c in columns:
        m = EPOCH_COLUMN.fullmatch(str(c))
        if m:
            out[int(m.group(1))] = c
    return out


def variant_scores(table: Mapping[str, np.ndarray], variant: str, selected_epoch: int | None = None) -> np.ndarray:
    """TracIn summed over the checkpoints ``variant`` keeps, from the per-checkpoint columns
    of ``table`` (a DataFrame or a dict of arrays), as float64."""
    cols = epoch_columns(list(table.keys()))
    if not cols:
        raise ValueError("no tracin_epoch_NNN columns in the scores table; run the tracin estimator (influence.methods)")
    chosen = select_epochs(sorted(cols), variant, selected_epoch)
    return np.sum([np.asarray(table[cols[e]], dtype=np.float64) for e in chosen], axis=0)
