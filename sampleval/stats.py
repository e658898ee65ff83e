"""Paired statistics over seeds: each strategy against its random control.

For one comparison, ``d_s = metric(strategy, seed s) - metric(control, seed s)`` over
the shared seeds. We report:

- the two-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon``; exact null
  distribution when there are no zero or tied differences, normal approximation otherwise);
- the minimum attainable p for that number of non-zero pairs: ``2 / 2**n`` two-sided
  (``1 / 2**n`` one-sided); when it exceeds alpha, significance cannot be reached and a
  warning is recorded;
- Benjamini-Hochberg adjusted p-values across all comparisons
  (``scipy.stats.false_discovery_control``);
- Cohen's d_z = mean(d) / sd(d) (sample sd, ddof=1) and the median paired difference
  with a percentile bootstrap CI (seeded).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats as st


def min_attainable_p(n: int, alternative: str = "two-sided") -> float:
    if n <= 0:
        return 1.0
    return min(1.0, (2.0 if alternative == "two-sided" else 1.0) / 2.0**n)


def cohen_dz(d: np.ndarray) -> float | None:
    d = np.asarray(d, dtype=float)
    if len(d) < 2:
        return None
    sd = d.std(ddof=1)
    return None if sd == 0 else float(d.mean() / sd)


def bootstrap_median_ci(d: np.ndarray, n_bootstrap: int = 10000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    d = np.asarray(d, dtype=float)
    rng = np.random.default_rng(seed)
    samples = rng.choice(d, size=(n_bootstrap, len(d)), replace=True)
    medians = np.median(samples, axis=1)
    lo, hi = np.quantile(medians, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def paired_test(strategy: np.ndarray, control: np.ndarray, alpha: float = 0.05, n_bootstrap: int = 10000, seed: int = 0) -> dict:
    strategy = np.asarray(strategy, dtype=float)
    control = np.asarray(control, dtype=float)
    if strategy.shape != control.shape or strategy.ndim != 1:
        raise ValueError("paired test needs two 1-D arrays of equal length (one value per seed)")
    d = strategy - control
    n_nonzero = int(np.count_nonzero(d))
    exact = n_nonzero == len(d) and len(np.unique(np.abs(d))) == len(d)
    if n_nonzero == 0:
        statistic, p = 0.0, 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = st.wilcoxon(strategy, control, zero_method="wilcox", alternative="two-sided", method="exact" if exact else "approx")
        statistic, p = float(res.statistic), float(res.pvalue)
    min_p = min_attainable_p(n_nonzero)
    lo, hi = bootstrap_median_ci(d, n_bootstrap, seed=seed)
    return {
        "n_seeds": int(len(d)),
        "n_nonzero": n_nonzero,
        "mean_diff": float(d.mean()),
        "median_diff": float(np.median(d)),
        "median_diff_ci_low": lo,
        "median_diff_ci_high": hi,
        "cohen_dz": cohen_dz(d),
        "wilcoxon_statistic": statistic,
        "p": p,
        "method": "exact" if exact else "normal-approx",
        "min_attainable_p": min_p,
        "alpha_reachable": bool(min_p <= alpha),
    }


def benjamini_hochberg(p_values: list[float]) -> list[float]:
    if not p_values:
        return []
    return [float(q) for q in st.false_discovery_control(np.asarray(p_values, dtype=float), method="bh")]


def compare(results: dict[tuple[str, float], dict[int, float]], pairs: list[tuple[str, str, float]], alpha: float, n_bootstrap: int) -> list[dict]:
    """Run every (strategy, control, fraction) comparison and add BH-adjusted p-values.

    ``results[(strategy, fraction)][seed] = metric``. A missing cell or seed is an error.
    """
    rows = []
    for strategy, control, fraction in pairs:
        for key in ((strategy, fraction), (control, fraction)):
            if key not in results:
                raise KeyError(f"missing subset cell {key[0]} at fraction {key[1]}; run `dvc repro` to create it")
        s_res, c_res = results[(strategy, fraction)], results[(control, fraction)]
        if set(s_res) != set(c_res):
            raise KeyError(f"{strategy} and {control} at fraction {fraction} were run with different seeds ({sorted(s_res)} vs {sorted(c_res)})")
        seeds = sorted(s_res)
        row = {"strategy": strategy, "control": control, "fraction": fraction}
        row.update(paired_test(np.array([s_res[s] for s in seeds]), np.array([c_res[s] for s in seeds]), alpha, n_bootstrap))
        row["strategy_mean"] = float(np.mean([s_res[s] for s in seeds]))
        row["control_mean"] = float(np.mean([c_res[s] for s in seeds]))
        rows.append(row)
    for row, q in zip(rows, benjamini_hochberg([r["p"] for r in rows])):
        row["p_bh"] = q
        row["significant"] = bool(q <= alpha)
    return rows


def s_shapedness(scores: np.ndarray) -> float:
    """S-shapedness index of a sorted score distribution (the TracIn label-noise paper):
    slope of a least-squares line through the sorted scores minus the slope of the line
    through their end points, with ranks scaled to [0, 1]. Near 0 for a straight
    (uniform) distribution; negative when mass sits in a flat middle with steep tails
    (an S shape)."""
    y = np.sort(np.asarray(scores, dtype=float))
    if len(y) < 3 or y[-1] == y[0]:
        return 0.0
    x = np.linspace(0.0, 1.0, len(y))
    fit_slope = np.polyfit(x, y, 1)[0]
    end_slope = y[-1] - y[0]
    return float((fit_slope - end_slope) / math.fabs(end_slope))
