"""Correlations between predicted and actual effects, with paired percentile bootstrap CIs.

:func:`correlation_table` resamples the items (points or subsets) with one seeded set of
resamples shared by every estimator, so differences between estimators are paired
(``*_vs_best`` CIs). Used by the fidelity stage for leave-one-out, the LDS and the
convex control alike. :func:`seed_noise`: how well one retraining seed reproduces another.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np


def correlations(predicted, actual) -> dict:
    """Pearson and Spearman correlations (and two-sided p-values) between two 1-D arrays;
    NaN where undefined (fewer than 3 pairs or a constant input)."""
    from scipy import stats

    p = np.asarray(predicted, float)
    a = np.asarray(actual, float)
    if p.shape != a.shape or p.ndim != 1:
        raise ValueError(f"predicted {p.shape} and actual {a.shape} must be 1-D arrays of the same length")
    out = {"n": int(len(p)), "pearson": np.nan, "pearson_p": np.nan, "spearman": np.nan, "spearman_p": np.nan}
    if len(p) < 3 or np.ptp(p) == 0 or np.ptp(a) == 0:
        return out
    r = stats.pearsonr(p, a)
    s = stats.spearmanr(p, a)
    out.update(pearson=float(r.statistic), pearson_p=float(r.pvalue), spearman=float(s.statistic), spearman_p=float(s.pvalue))
    return out


def _rowwise_pearson(p: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis (NaN where an input is constant)."""
    p = p - p.mean(-1, keepdims=True)
    a = a - a.mean(-1, keepdims=True)
    den = np.sqrt((p * p).sum(-1) * (a * a).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (p * a).sum(-1) / den
    return np.where(den > 0, r, np.nan)


def _rowwise_spearman(p: np.ndarray, a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return _rowwise_pearson(rankdata(p, axis=-1), rankdata(a, axis=-1))


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) resampling indices with replacement, from ``seed`` (shared by estimators)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _ci(values: np.ndarray, level: float) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if len(v) < 0.5 * len(values) or len(v) == 0:  # mostly degenerate resamples
        return math.nan, math.nan
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(v, [tail, 100 - tail])
    return float(lo), float(hi)


def correlation_table(
    predicted: Mapping[str, np.ndarray], actual: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95, prefix: str = ""
) -> dict[str, dict]:
    """Pearson and Spearman of each estimator's ``predicted`` against ``actual`` with
    percentile bootstrap CIs: the items (points or subsets) are resampled with replacement,
    ``n_boot`` times from ``seed``, with the same resamples for every estimator. For the
    estimator with the highest point Spearman (the "best"), every other one also gets the
    bootstrap CI of its Spearman minus the best's (``spearman_vs_best_lo/hi``): paired, so it
    separates estimators that marginal CIs cannot.

    Keys are ``{prefix}pearson``, ``{prefix}pearson_lo``, ``{prefix}pearson_hi``, the same for
    spearman, and ``{prefix}spearman_vs_best_lo/hi``."""
    actual = np.asarray(actual, float)
    names = list(predicted)
    if not names:
        return {}
    preds = np.stack([np.asarray(predicted[m], float) for m in names])
    if preds.shape[1] != len(actual) or actual.ndim != 1:
        raise ValueError(f"predicted {preds.shape[1:]} and actual {actual.shape} must be 1-D arrays of the same length")
    idx = bootstrap_indices(len(actual), n_boot, seed)
    a_boot = actual[idx]
    out: dict[str, dict] = {}
    boots = {}
    for m, p in zip(names, preds):
        point = correlations(p, actual)
        bp = _rowwise_pearson(p[idx], a_boot)
        bs = _rowwise_spearman(p[idx], a_boot)
        boots[m] = bs
        (plo, phi), (slo, shi) = _ci(bp, level), _ci(bs, level)
        out[m] = {f"{prefix}pearson": point["pearson"], f"{prefix}pearson_lo": plo, f"{prefix}pearson_hi": phi,
                  f"{prefix}spearman": point["spearman"], f"{prefix}spearman_lo": slo, f"{prefix}spearman_hi": shi}
    finite = [m for m in names if np.isfinite(out[m][f"{prefix}spearman"])]
    if len(finite) > 1:
        best = max(finite, key=lambda m: out[m][f"{prefix}spearman"])
        for m in finite:
            lo, hi = (0.0, 0.0) if m == best else _ci(boots[m] - boots[best], level)
            out[m][f"{prefix}spearman_vs_best_lo"], out[m][f"{prefix}spearman_vs_best_hi"] = lo, hi
    return out


def seed_noise(values: np.ndarray) -> dict:
    """Training noise of a retraining target measured with several seeds.

    ``values``: (n_items, n_seeds), one column per seed (leave-one-out effects of points,
    or losses of subsets). Returns the mean pairwise Pearson correlation between seeds
    across items (``seed_agreement``: how well one seed reproduces another), the
    Spearman-Brown reliability of the mean over all seeds (``reliability``: the squared
    correlation the seed-averaged target would have with its noise-free value; an
    estimator's correlation with the target is at most about its square root), and the
    share of the variance across items that is noise (``noise_share``: mean squared
    standard error of the item means / their variance), and the mean pairwise Spearman
    between seeds (``seed_agreement_spearman``, robust to a few extreme items). NaN where
    one seed gives nothing to compare.""" 
    from scipy.stats import spearmanr

    v = np.asarray(values, float)
    out = {"n_seeds": int(v.shape[1]) if v.ndim == 2 else 1, "seed_agreement": math.nan, "seed_agreement_spearman": math.nan,
           "reliability": math.nan, "noise_share": math.nan}
    if v.ndim != 2 or v.shape[1] < 2 or v.shape[0] < 3:
        return out
    k = v.shape[1]
    pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
    r = [np.corrcoef(v[:, a], v[:, b])[0, 1] for a, b in pairs]
    r_mean = float(np.nanmean(r)) if np.isfinite(r).any() else math.nan
    rho = [spearmanr(v[:, a], v[:, b]).statistic for a, b in pairs]
    out["seed_agreement_spearman"] = float(np.nanmean(rho)) if np.isfinite(rho).any() else math.nan
    means = v.mean(1)
    se2 = v.var(1, ddof=1) / k
    out.update(
        seed_agreement=r_mean,
        reliability=float(k * r_mean / (1 + (k - 1) * r_mean)) if math.isfinite(r_mean) and r_mean > -1 / (k - 1) else math.nan,
        noise_share=float(se2.mean() / means.var(ddof=1)) if means.var(ddof=1) > 0 else math.nan,
    )
    return out
