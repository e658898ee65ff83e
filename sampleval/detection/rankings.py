"""Rankings as suspicion scores (higher = more likely a wrong label), and combinations.

Orientation of the estimators' columns (their sign: positive = helpful):

- signed influence (``tracin``, ``tracin_last_layer``, ``if_*``, ``tracincp``,
  ``tracin_randproj``) and ``loss`` (minus the training loss): suspicion = minus the
  score, so harmful influence and high loss rank first;
- self-influence columns (``*self_influence``): suspicion = the score (high = unusual);
- ``cleanlab_logreg`` (the pipeline's ``cleanlab`` estimator, quality - 0.5 on logistic
  regression probabilities): suspicion = minus the score (low quality first);
- ``cleanlab`` (out-of-fold, :mod:`.oof`): suspicion = 1 - label quality;
- ``random``: uniform draws, seeded per cell.

A combination is the mean of its components' normalised ranks (:func:`rank_average`):
``r_j(i) = rank of sample i under component j / n`` (average ranks for ties), in [1/n, 1].
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from sampleval.influence.registry import suspicion


def orient(column: str, values: np.ndarray) -> np.ndarray:
    """The suspicion score of an estimator column (see the module docstring)."""
    return suspicion(column, np.asarray(values, dtype=np.float64))


def random_ranking(n: int, seed: int) -> np.ndarray:
    """Uniform suspicion scores, seeded (the control every ranking is read against)."""
    return np.random.default_rng([seed, 17]).random(n)


def rank_average(columns: dict[str, np.ndarray], components: list[str]) -> np.ndarray:
    """Mean normalised rank of the named suspicion columns (higher = more suspicious)."""
    missing = [c for c in components if c not in columns]
    if missing:
        raise ValueError(f"combination needs rankings {missing}, which this cell did not compute; add them to detect.rankings")
    n = len(columns[components[0]])
    return np.mean([rankdata(columns[c], method="average") / n for c in components], axis=0)
