"""Label noise injection with exact counts, recording what was flipped.

:func:`apply_noise` is the noise step of a prepared table (``prepare`` and the detection
cells both call it); :func:`inject_noise` and :func:`inject_multilabel_noise` flip label arrays.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from sampleval.config import ParamsError
from sampleval.data import sources
from sampleval.data.settings import NOISE_KINDS, NoiseParams


def apply_noise(table: pd.DataFrame, noise: NoiseParams, classes: list[str], task: str, seed: int) -> None:
    """Inject ``noise`` (params' noise section, resolved: ``kind``, ``rate``, ``pairs``,
    ``splits``) into ``table['label']`` of the rows whose ``split`` is in ``noise.splits``,
    drawn from ``np.random.default_rng(seed)``; sets ``table['clean_label']`` (the labels before)
    and ``table['flipped']``. In place. Multi-class tasks only; pairs must name classes of ``classes``."""
    clean = table["label"].copy()
    if noise.kind != "none" and noise.rate > 0:
        if task != "multiclass":
            raise ParamsError(f"params: 'noise.kind' must be none for multi-label sources ({sources.multilabel_sources()})")
        out_of_range = [p for p in noise.pairs if max(p) >= len(classes)] if noise.kind == "pairwise" else []
        if out_of_range:
            raise ParamsError(f"params: 'noise.pairs' {out_of_range} name a class index outside 0..{len(classes) - 1} "
                              f"(this data's classes: {', '.join(f'{i}={c}' for i, c in enumerate(classes[:12]))}); fix the pairs or set noise.kind")
        eligible = table["split"].isin(noise.splits).to_numpy()
        noisy, flipped = inject_noise(
            table["label"].to_numpy(), eligible, noise.kind, noise.rate, len(classes), noise.pairs, np.random.default_rng(seed)
        )
        table["label"] = noisy
    else:
        flipped = np.zeros(len(table), dtype=bool)
    table["clean_label"] = clean
    table["flipped"] = flipped


def inject_noise(
    labels: np.ndarray,
    eligible: np.ndarray,
    kind: str,
    rate: float,
    n_classes: int,
    pairs: list[list[int]] | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Flip class labels; return ``(noisy_labels, flipped)``.

    - ``uniform``: exactly ``round(rate * n_eligible)`` eligible samples get a label
      drawn uniformly from the *other* classes.
    - ``pairwise``: for each ``[source, target]`` pair, exactly
      ``round(rate * n_source)`` eligible samples of class ``source`` are relabelled
      ``target`` (a systematic labelling bias, as in the 4/9 setting).
    - ``none``: no change.

    ``eligible`` is a boolean mask (e.g. the training split); other samples are never touched.
    """
    if rng is None:
        rng = np.random.default_rng(0)
    labels = np.asarray(labels)
    eligible = np.asarray(eligible, dtype=bool)
    if labels.shape != eligible.shape:
        raise ValueError("labels and eligible mask must have the same shape")
    if not 0 <= rate < 1:
        raise ValueError(f"noise rate must be in [0, 1), got {rate}")
    noisy = labels.copy()
    flipped = np.zeros(len(labels), dtype=bool)
    if kind == "none" or rate == 0:
        return noisy, flipped
    if kind == "uniform":
        candidates = np.flatnonzero(eligible)
        n_flip = int(round(rate * len(candidates)))
        chosen = np.sort(rng.choice(candidates, size=n_flip, replace=False))
        offsets = rng.integers(1, n_classes, size=n_flip)  # never 0: never the same class
        noisy[chosen] = (labels[chosen] + offsets) % n_classes
        flipped[chosen] = True
        return noisy, flipped
    if kind == "pairwise":
        if not pairs:
            raise ValueError("pairwise noise needs at least one [source, target] pair")
        for source, target in pairs:
            if source == target:
                raise ValueError(f"pairwise noise pair [{source}, {target}] maps a class to itself")
            if not (0 <= source < n_classes and 0 <= target < n_classes):
                raise ValueError(f"pairwise noise pair [{source}, {target}] names a class outside 0..{n_classes - 1}")
            candidates = np.flatnonzero(eligible & (labels == source) & ~flipped)
            n_flip = int(round(rate * len(candidates)))
            chosen = np.sort(rng.choice(candidates, size=n_flip, replace=False))
            noisy[chosen] = target
            flipped[chosen] = True
        return noisy, flipped
    raise ValueError(f"unknown noise kind {kind!r} (allowed: none, {', '.join(NOISE_KINDS)})")


MULTILABEL_DIRECTIONS = ("both", "drop", "add")


def inject_multilabel_noise(
    labels: np.ndarray,
    eligible: np.ndarray,
    rate: float,
    direction: str = "both",
    findings: list[int] | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Flip multi-label (multi-hot) targets per finding; return ``(noisy, flipped)``, both ``(N, K)``.

    For each finding ``k`` (all, or the indices in ``findings``), independently:

    - ``both``: exactly ``round(rate * n_eligible)`` eligible samples get entry ``k`` toggled (0 <-> 1);
    - ``drop``: exactly ``round(rate * n_positive)`` eligible samples with ``k`` present lose it
      (a missed finding, the typical error of report-mined labels such as NIH's);
    - ``add``: exactly ``round(rate * n_negative)`` eligible samples without ``k`` gain it.

    ``flipped[i, k]`` records which entries changed; rows outside ``eligible`` are never touched.
    Entries that are not 0/1 (e.g. -1 = ignored) are never chosen. Draws use ``rng`` in
    finding order, so the same seed gives the same flips.
    """
    if rng is None:
        rng = np.random.default_rng(0)
    labels = np.asarray(labels)
    eligible = np.asarray(eligible, dtype=bool)
    if labels.ndim != 2:
        raise ValueError(f"multi-label noise needs an (N, K) multi-hot label array, got shape {labels.shape}")
    if eligible.shape != (labels.shape[0],):
        raise ValueError(f"eligible mask has shape {eligible.shape}, expected ({labels.shape[0]},)")
    if not 0 <= rate < 1:
        raise ValueError(f"noise rate must be in [0, 1), got {rate}")
    if direction not in MULTILABEL_DIRECTIONS:
        raise ValueError(f"unknown multi-label noise direction {direction!r} (allowed: {', '.join(MULTILABEL_DIRECTIONS)})")
    n_findings = labels.shape[1]
    findings = list(range(n_findings)) if findings is None else list(findings)
    bad = [k for k in findings if not 0 <= k < n_findings]
    if bad:
        raise ValueError(f"finding index {bad[0]} is outside 0..{n_findings - 1}")
    noisy = labels.copy()
    flipped = np.zeros(labels.shape, dtype=bool)
    for k in findings:
        col = labels[:, k]
        valid = eligible & ((col == 0) | (col == 1))
        if direction == "drop":
            candidates = np.flatnonzero(valid & (col == 1))
        elif direction == "add":
            candidates = np.flatnonzero(valid & (col == 0))
        else:
            candidates = np.flatnonzero(valid)
        n_flip = int(round(rate * len(candidates)))
        chosen = np.sort(rng.choice(candidates, size=n_flip, replace=False))
        noisy[chosen, k] = 1 - col[chosen]
        flipped[chosen, k] = True
    return noisy, flipped
