"""Paired statistics over seeds: each strategy against its random control.

For one comparison, ``d_s = metric(strategy, seed s) - metric(control, seed s)`` over
the shared seeds. We report:

- the test runs on exact values: for accuracy on the integer correct-counts out of the
  ``n_test`` test samples (``d_s`` an integer, so equal differences such as two seeds'
  +2/360 are equal, ties and ``n_tied`` exact; the reported differences are ``d_s / n_test``);
  for other metrics (macro F1, macro AUROC, DCS, ...) on the unrounded values;
- an exact two-sided paired test for every row: the Wilcoxon signed-rank statistic
  ``S = sum_i sign(d_i) r_i`` (``r_i`` = average rank of ``|d_i|`` among the non-zero
  differences) referred to its distribution over all ``2**n`` sign flips of the paired
  differences (the paired permutation test, ``scipy.stats.permutation_test`` with
  ``permutation_type='samples'``); ``p = P(|S*| >= |S|)``. It is exact with tied and
  zero differences: the ranks are conditioned on, and a zero difference flips to itself;
- the minimum attainable p of that test: ``2 / 2**m`` with ``m`` the number of non-zero
  differences (only the two all-same-sign flips reach the largest ``|S|``, ties or not;
  zeros do not count). When it exceeds alpha, significance cannot be reached and a
  warning is recorded;
- Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``) over
  the distinct comparisons: rows that train on the same ids as another row (same
  ``ids_sha256`` per seed, strategy and control) are one comparison, counted once;
- Cohen's d_z = mean(d) / sd(d) (sample sd, ddof=1) and the median paired difference
  with a percentile bootstrap CI (seeded).
"""
from __future__ import annotations


import numpy as np
from scipy import stats as st

MAX_EXACT_PAIRS = 20  # 2**20 sign flips: about a second


def min_attainable_p(n_nonzero: int, alternative: str = "two-sided") -> float:
    """The smallest p the exact sign-flip test can give with ``n_nonzero`` non-zero differences."""
    if n_nonzero <= 0:
        return 1.0
    return min(1.0, (2.0 if alternative == "two-sided" else 1.0) / 2.0**n_nonzero)


def signed_rank_statistic(d: np.ndarray) -> float:
    """``S = sum sign(d_i) * rank(|d_i|)`` over the non-zero differences (average ranks for ties)."""
    d = np.asarray(d, dtype=float)
    nz = d[d != 0]
    if len(nz) == 0:
        return 0.0
    return float(np.sum(np.sign(nz) * st.rankdata(np.abs(nz))))


def sign_flip_test(d: np.ndarray) -> tuple[float, float]:
    """Exact two-sided signed-rank test by enumerating every sign flip: ``(S, p)``.

    Zero differences are their own flip, so enumerating the ``2**m`` flips of the
    ``m`` non-zero differences gives the same p as all ``2**n``. The doubled ranks are
    integers, so the comparison ``|S*| >= |S|`` is exact.
    """
    d = np.asarray(d, dtype=float)
    nz = d[d != 0]
    m = len(nz)
    if m == 0:
        return 0.0, 1.0
    if m > MAX_EXACT_PAIRS:
        raise ValueError(f"the exact sign-flip test enumerates 2**n flips; {m} non-zero pairs is too many (at most {MAX_EXACT_PAIRS} seeds)")
    r2 = np.rint(2 * st.rankdata(np.abs(nz))).astype(np.int64)  # doubled average ranks: integers
    observed = int(np.sum(np.sign(nz).astype(np.int64) * r2))
    bits = (np.arange(2**m, dtype=np.int64)[:, None] >> np.arange(m, dtype=np.int64)) & 1
    flipped = (1 - 2 * bits) @ r2  # every sign assignment
    p = float(np.count_nonzero(np.abs(flipped) >= abs(observed)) / 2**m)
    return observed / 2.0, p


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


def as_counts(values, name: str = "values") -> np.ndarray:
    """Integer correct-counts as an int64 array; a non-integral value is an error (counts, not rates)."""
    a = np.asarray(values)
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    f = np.asarray(a, dtype=float)
    if not np.all(np.isfinite(f)) or np.any(f != np.rint(f)):
        raise ValueError(f"{name}: correct-counts must be integers, got {a.tolist()}")
    return np.rint(f).astype(np.int64)


def correct_count(accuracy: float, n: int) -> int:
    """The number of correct predictions behind a multi-class accuracy of ``n`` samples
    (``accuracy = k / n`` exactly as scikit-learn computes it, so ``k`` is recovered exactly)."""
    k = int(round(float(accuracy) * n))
    if abs(float(accuracy) * n - k) > 1e-6:
        raise ValueError(f"accuracy {accuracy} is not a count out of {n}")
    return k


def paired_test(strategy: np.ndarray, control: np.ndarray, alpha: float = 0.05, n_bootstrap: int = 10000, seed: int = 0,
                n_test: int | None = None) -> dict:
    """The paired test of ``strategy`` against ``control`` over seeds (see the module docstring).

    ``n_test``: the values are correct-counts out of ``n_test`` samples (integers); the test,
    ties and zeros run on the integer differences and the reported differences, means and CI
    are accuracies (``/ n_test``). Without it: the (unrounded) values themselves."""
    if n_test is not None:
        strategy, control = as_counts(strategy, "strategy"), as_counts(control, "control")
        scale = float(n_test)
    else:
        strategy, control = np.asarray(strategy, dtype=float), np.asarray(control, dtype=float)
        scale = 1.0
    if strategy.shape != control.shape or strategy.ndim != 1:
        raise ValueError("paired test needs two 1-D arrays of equal length (one value per seed)")
    d = strategy - control  # integers for counts: exact zeros and ties
    nz = d[d != 0]
    n_nonzero = int(len(nz))
    statistic, p = sign_flip_test(d)
    min_p = min_attainable_p(n_nonzero)
    lo, hi = bootstrap_median_ci(d, n_bootstrap, seed=seed)
    return {
        "n_seeds": int(len(d)),
        "n_nonzero": n_nonzero,
        "n_tied": int(n_nonzero - len(np.unique(np.abs(nz)))),
        "tested_on": "correct counts" if n_test is not None else "unrounded values",
        "n_test": None if n_test is None else int(n_test),
        "differences": [int(v) for v in d] if n_test is not None else [float(v) for v in d],
        "mean_diff": float(d.mean() / scale),
        "median_diff": float(np.median(d) / scale),
        "median_diff_ci_low": lo / scale,
        "median_diff_ci_high": hi / scale,
        "cohen_dz": cohen_dz(d),
        "signed_rank_statistic": statistic,
        "p": p,
        "method": "exact sign-flip signed-rank",
        "min_attainable_p": min_p,
        "alpha_reachable": bool(min_p <= alpha),
    }


def benjamini_hochberg(p_values: list[float]) -> list[float]:
    if not p_values:
        return []
    return [float(q) for q in st.false_discovery_control(np.asarray(p_values, dtype=float), method="bh")]


def compare(comparisons: list[dict], alpha: float, n_bootstrap: int) -> list[dict]:
    """Run every comparison and add BH-adjusted p-values over the distinct ones.

    Each comparison: ``{'name', 'strategy': {seed: metric}, 'control': {seed: metric},
    'signature': hashable}`` plus any fields to carry into the row; with ``'n_test'`` (not
    None) the metrics are correct-counts out of ``n_test`` (:func:`paired_test`). Comparisons with the
    same ``signature`` (the same ids trained on, seed by seed, on both sides) are one
    test: BH counts the first once, and the others get ``same_as`` = its name and its q.
    """
    rows, first_of = [], {}
    for comp in comparisons:
        s_res, c_res = comp["strategy"], comp["control"]
        if set(s_res) != set(c_res):
            raise KeyError(f"{comp['name']}: strategy and control were run with different seeds ({sorted(s_res)} vs {sorted(c_res)})")
        seeds = sorted(s_res)
        n_test = comp.get("n_test")
        scale = 1.0 if n_test is None else float(n_test)
        row = {k: v for k, v in comp.items() if k not in ("strategy", "control", "signature", "n_test")}
        row.update(paired_test(np.array([s_res[s] for s in seeds]), np.array([c_res[s] for s in seeds]), alpha, n_bootstrap, n_test=n_test))
        row["strategy_mean"] = float(np.mean([s_res[s] for s in seeds]) / scale)
        row["control_mean"] = float(np.mean([c_res[s] for s in seeds]) / scale)
        sig = comp.get("signature")
        row["same_as"] = first_of.get(sig) if sig is not None else None
        if sig is not None:
            first_of.setdefault(sig, comp["name"])
        rows.append(row)
    distinct = [r for r in rows if r["same_as"] is None]
    q_of = dict(zip([r["name"] for r in distinct], benjamini_hochberg([r["p"] for r in distinct])))
    for row in rows:
        row["p_bh"] = q_of[row["same_as"] or row["name"]]
        row["significant"] = bool(row["p_bh"] <= alpha)
    return rows
