"""Subsets of the training set chosen from influence scores, and their random controls.

Strategies (``direction-ranking``):

- ``remove-harmful``: drop the k lowest-scoring samples (most harmful);
- ``remove-helpful``: drop the k highest-scoring samples;
- ``remove-random``: drop k samples at random (the control for both removals);
- ``select-helpful``: keep only the k highest-scoring samples;
- ``select-random``: keep k samples at random (its control).

``k = round(fraction * n)``. With ``stratified=True`` every class loses (or keeps) the
same share: ``k_c = round(fraction * n_c)`` per class, for the ranked strategy and its
random control alike, so both have identical sizes and class composition. Ties in the
scores are broken by ``sample_id`` so the choice is deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIRECTIONS = ("remove", "select")
RANKINGS = ("harmful", "helpful", "random")
STRATEGIES = ("remove-harmful", "remove-helpful", "remove-random", "select-helpful", "select-random")
RANKED_STRATEGIES = ("remove-harmful", "remove-helpful", "select-helpful")


def control_of(strategy: str) -> str:
    """The random control that a strategy is compared with."""
    direction, _ = parse_strategy(strategy)
    return f"{direction}-random"


def fractions_for(strategy: str, remove_fractions: list[float], select_fractions: list[float]) -> list[float]:
    """The fractions a strategy's cells run at (``subsets.remove_fractions`` or ``select_fractions``)."""
    direction, _ = parse_strategy(strategy)
    return remove_fractions if direction == "remove" else select_fractions


def parse_strategy(strategy: str) -> tuple[str, str]:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown subset strategy {strategy!r} (allowed: {', '.join(STRATEGIES)})")
    direction, ranking = strategy.split("-")
    return direction, ranking


@dataclass
class Subset:
    keep: np.ndarray  # bool mask over the training set: the samples trained on
    chosen: np.ndarray  # bool mask: the removed (remove-*) or selected (select-*) samples


def _pick(order_scores: np.ndarray | None, ids: np.ndarray, candidates: np.ndarray, k: int, ranking: str, rng: np.random.Generator) -> np.ndarray:
    """Indices (into the full arrays) of k samples among ``candidates``."""
    if ranking == "random":
        return np.sort(rng.choice(candidates, size=k, replace=False))
    scores = order_scores[candidates]
    # lexsort: last key is primary. harmful = lowest score first; helpful = highest first.
    primary = scores if ranking == "harmful" else -scores
    order = np.lexsort((ids[candidates], primary))
    return candidates[order[:k]]


def choose_subset(
    ids: np.ndarray,
    scores: np.ndarray | None,
    strategy: str,
    fraction: float,
    seed: int,
    classes: np.ndarray | None = None,
) -> Subset:
    """Choose the training subset for one (strategy, fraction, seed) cell.

    ``classes``: per-sample class for stratified choice (None = global ranking).
    ``scores`` may be None for random strategies. ``seed`` only affects random strategies.
    """
    direction, ranking = parse_strategy(strategy)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be strictly between 0 and 1, got {fraction}")
    ids = np.asarray(ids).astype(str)
    n = len(ids)
    if ranking != "random":
        if scores is None or len(scores) != n:
            raise ValueError("ranked strategies need one score per training sample")
        if not np.all(np.isfinite(scores)):
            raise ValueError("influence scores contain NaN or inf; rerun the influence stage")
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if classes is None else [np.flatnonzero(classes == c) for c in np.unique(classes)]
    chosen = np.zeros(n, dtype=bool)
    for members in groups:
        k = int(round(fraction * len(members)))
        if k > 0:
            chosen[_pick(scores, ids, members, k, ranking, rng)] = True
    k_total = int(chosen.sum())
    if k_total == 0 or k_total == n:
        raise ValueError(f"fraction {fraction} of {n} samples gives an empty or full subset; choose a fraction that leaves both sides non-empty")
    keep = ~chosen if direction == "remove" else chosen
    return Subset(keep=keep, chosen=chosen)
