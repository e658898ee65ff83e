"""Label noise injection with exact counts, recording what was flipped."""
from __future__ import annotations

import numpy as np


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
    raise ValueError(f"unknown noise kind {kind!r} (allowed: none, uniform, pairwise)")
