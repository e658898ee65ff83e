"""Subsets of the training set chosen from influence rankings, and their random controls.

The experiment has four dimensions: ranking (a score column: ``tracin``, ``self_influence``,
``loss``, ...) x strategy x fraction x variant (``global`` or class-``stratified``).

Strategies:

- ``remove-harmful``: drop the k most harmful samples;
- ``remove-helpful``: drop the k most helpful samples;
- ``select-helpful``: keep only the k most helpful samples;

and their random controls ``remove-random`` / ``select-random``: the same k, the same
variant and the same training seeds. A control depends only on (direction, fraction,
variant, seeds), never on a ranking, so one control cell serves every ranking.

Class-matched controls ``<strategy>-matched`` (e.g. ``remove-harmful-matched``): random
samples drawn with the class composition (by given, possibly noisy, label) of the
strategy's chosen set: per class, as many random samples of that class as the strategy
chose, drawn with the training seed. Same size, same seeds; it depends on the ranking (its
composition does). A strategy that beats it gains from *which* samples it chose, not from
thinning a class (:func:`choose_matched`). Multi-label data: a "class" is a distinct label
vector.

Orientation (:func:`helpfulness`): every ranking is turned into one "helpfulness" value,
higher = more helpful, lower = more harmful/suspicious. Signed estimators already use
positive = helpful (``tracin``; ``loss`` stores minus the training loss); magnitude
estimators (``self_influence``: high = unusual) are negated. So "harmful" means the
lowest TracIn, the highest self-influence, the highest training loss.

Sizes: ``k = round(fraction * n)``; with ``variant='stratified'`` every class loses (or
keeps) the same share, ``k_c = round(fraction * n_c)`` per class, for strategy and control
alike. Ties in the ranking are broken by ``sample_id``.

A random draw orders each stratum by a seeded permutation and keeps its head: so
``remove-random@f`` and ``select-random@(1-f)`` keep the same ids whenever the sizes
agree, exactly as ``remove-harmful@f`` and ``select-helpful@(1-f)`` do. Such cells are one
comparison (see :mod:`sampleval.experiments.stats`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sampleval.experiments.settings import STRATEGIES, VARIANTS  # noqa: F401  (VARIANTS re-exported: subset_runs)
from sampleval.influence.registry import suspicion

CONTROLS = ("remove-random", "select-random")
RANDOM = "random"  # the ranking name of control cells
MATCHED = "matched"  # the kind of a class-matched control: <strategy>-matched

def helpfulness(ranking: str, values: np.ndarray) -> np.ndarray:
    """Orient a ranking's scores: higher = more helpful, lower = more harmful/suspicious."""
    values = np.asarray(values, dtype=float)
    return -suspicion(ranking, values)


def parse_strategy(strategy: str) -> tuple[str, str]:
    """``(direction, kind)``: kind is ``harmful``, ``helpful``, ``random`` or ``matched``."""
    if base_strategy(strategy) not in STRATEGIES and strategy not in CONTROLS:
        raise ValueError(f"unknown subset strategy {strategy!r} (allowed: {', '.join(STRATEGIES + CONTROLS)}, or a strategy + '-{MATCHED}')")
    direction, kind = strategy.split("-")[:2]
    return direction, MATCHED if strategy.endswith(f"-{MATCHED}") else kind


def base_strategy(strategy: str) -> str:
    """The ranked strategy a class-matched control copies the composition of (else ``strategy``)."""
    return strategy[: -len(MATCHED) - 1] if strategy.endswith(f"-{MATCHED}") else strategy


def matched_of(strategy: str) -> str:
    """The class-matched random control of a ranked strategy."""
    if strategy not in STRATEGIES:
        raise ValueError(f"only ranked strategies ({', '.join(STRATEGIES)}) have a class-matched control, not {strategy!r}")
    return f"{strategy}-{MATCHED}"


def control_of(strategy: str) -> str:
    """The random control that a strategy is compared with."""
    direction, _ = parse_strategy(strategy)
    return f"{direction}-random"


@dataclass
class Subset:
    keep: np.ndarray  # bool mask over the training set: the samples trained on
    chosen: np.ndarray  # bool mask: the removed (remove-*) or selected (select-*) samples


def _keep_order(helpful: np.ndarray | None, ids: np.ndarray, members: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``members`` ordered so that the head is what a smaller kept set keeps: most helpful
    first for a ranking (ties by id), a seeded permutation for a random draw."""
    if helpful is None:
        return rng.permutation(members)
    return members[np.lexsort((ids[members], -helpful[members]))]


def choose_subset(
    ids: np.ndarray,
    helpful: np.ndarray | None,
    strategy: str,
    fraction: float,
    seed: int,
    classes: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> Subset:
    """Choose the training subset for one (strategy, fraction, seed) cell.

    ``helpful``: oriented scores (:func:`helpfulness`; None for random strategies).
    ``classes``: per-sample class for the stratified variant (None = global).
    ``labels``: the given labels (class-matched controls only: :func:`choose_matched`).
    ``seed`` only affects random strategies.
    """
    direction, kind = parse_strategy(strategy)
    if kind == MATCHED:
        if labels is None:
            raise ValueError(f"{strategy} needs the given labels to match the class composition")
        reference = choose_subset(ids, helpful, base_strategy(strategy), fraction, seed, classes)
        return choose_matched(reference, labels, direction, seed)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be strictly between 0 and 1, got {fraction}")
    ids = np.asarray(ids).astype(str)
    n = len(ids)
    if kind != RANDOM:
        if helpful is None or len(helpful) != n:
            raise ValueError("ranked strategies need one score per training sample")
        helpful = np.asarray(helpful, dtype=float)
        if not np.all(np.isfinite(helpful)):
            raise ValueError("influence scores contain NaN or inf; rerun the influence stage")
    else:
        helpful = None
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if classes is None else [np.flatnonzero(classes == c) for c in np.unique(classes)]
    keep = np.zeros(n, dtype=bool)
    for members in groups:
        k = int(round(fraction * len(members)))  # removed (remove-*) or selected (select-*)
        n_keep = len(members) - k if direction == "remove" else k
        order = _keep_order(helpful, ids, members, rng)
        if kind == "helpful" and direction == "remove":
            order = order[::-1]  # remove-helpful keeps the least helpful
        keep[order[:n_keep]] = True  # the head: the most helpful (or a random) n_keep
    chosen = ~keep if direction == "remove" else keep
    k_total = int(chosen.sum())
    if k_total == 0 or k_total == n:
        raise ValueError(f"fraction {fraction} of {n} samples gives an empty or full subset; choose a fraction that leaves both sides non-empty")
    return Subset(keep=keep, chosen=chosen)


def label_strata(labels: np.ndarray) -> np.ndarray:
    """Per sample, the index of its given label (a class; for multi-label data, a distinct label vector)."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return np.unique(labels, return_inverse=True)[1]
    return np.unique(labels.reshape(len(labels), -1), axis=0, return_inverse=True)[1].ravel()


def choose_matched(reference: Subset, labels: np.ndarray, direction: str, seed: int) -> Subset:
    """A random control with the class composition of ``reference``'s chosen set.

    Per class (by ``labels``, the given labels; :func:`label_strata`), in label order, a
    seeded permutation of its members, whose head is kept: as many as ``reference`` keeps of
    that class. So the chosen set has, class by class, as many samples as ``reference``'s
    (same size, same composition), drawn at random within the class; and as with the plain
    controls, ``remove-*-matched@f`` and ``select-*-matched@(1-f)`` keep the same ids
    whenever their references do."""
    strata = label_strata(labels)
    if len(strata) != len(reference.keep):
        raise ValueError(f"{len(strata)} labels for {len(reference.keep)} samples")
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(strata), dtype=bool)
    for g in range(int(strata.max()) + 1 if len(strata) else 0):
        members = np.flatnonzero(strata == g)
        keep[rng.permutation(members)[: int(reference.keep[members].sum())]] = True
    return Subset(keep=keep, chosen=~keep if direction == "remove" else keep)
