import itertools

import numpy as np
import pytest
from scipy import stats as st

from sampleval.stats import (
    benjamini_hochberg,
    bootstrap_median_ci,
    cohen_dz,
    compare,
    min_attainable_p,
    paired_test,
    sign_flip_test,
    signed_rank_statistic,
)


def _by_hand(d):
    """Two-sided p by listing every one of the 2**n sign assignments (zeros included)."""
    d = np.asarray(d, float)
    observed = abs(signed_rank_statistic(d))
    hits = [abs(signed_rank_statistic(d * np.array(signs))) >= observed - 1e-12 for signs in itertools.product([1, -1], repeat=len(d))]
    return sum(hits) / len(hits)


def _scipy_permutation(d):
    d = np.asarray(d, float)
    x, y = d, np.zeros_like(d)  # paired samples: swapping x_i and y_i flips the sign of d_i
    res = st.permutation_test((x, y), lambda a, b: signed_rank_statistic(a - b), permutation_type="samples",
                              n_resamples=np.inf, alternative="two-sided")
    return res.pvalue


@pytest.mark.parametrize(
    "d, expected",
    [
        ([0.0, 1.0, 2.0], 0.5),  # a zero: S = 3 of max 3 -> 2 of the 4 distinct flips
        ([1.0, 1.0, -2.0], 1.0),  # tied ranks 1.5, 1.5, 3: S = 0
        ([1.0, 1.0, 2.0], 0.25),  # ties, all positive: 2/8
        ([1.0, -1.0, 2.0, 2.0], 0.375),  # ranks 1.5 1.5 3.5 3.5, S = 7: |S*| >= 7 in 6 of 16 flips
        ([0.0, 0.0, 0.0], 1.0),
    ],
)
def test_exact_test_with_ties_and_zeros_against_enumeration_by_hand(d, expected):
    s, p = sign_flip_test(np.array(d))
    assert p == pytest.approx(expected)
    assert p == pytest.approx(_by_hand(d))


def test_exact_test_matches_scipy_permutation_test_on_accuracy_steps():
    rng = np.random.default_rng(0)
    for _ in range(5):
        d = rng.integers(-4, 6, size=7) / 360  # accuracy on 360 images: steps of 1/360, ties and zeros
        assert sign_flip_test(d)[1] == pytest.approx(_scipy_permutation(d))


def test_exact_test_matches_scipy_wilcoxon_exact_without_ties():
    a = np.array([0.91, 0.93, 0.95, 0.90, 0.96, 0.94, 0.97, 0.92])
    b = a - np.array([0.011, 0.023, 0.031, -0.012, 0.024, 0.016, 0.035, -0.004])  # distinct |d|: scipy's exact null
    res = paired_test(a, b)
    assert res["p"] == pytest.approx(st.wilcoxon(a, b, method="exact").pvalue)
    d = a - b
    assert res["cohen_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert res["median_diff"] == pytest.approx(np.median(d))
    assert res["median_diff_ci_low"] <= res["median_diff"] <= res["median_diff_ci_high"]


def test_min_attainable_p_is_the_floor_of_the_test_used():
    assert min_attainable_p(5) == 0.0625 and min_attainable_p(6) == 0.03125 and min_attainable_p(6, "greater") == 1 / 64
    # 6 seeds, one zero difference and ties: the floor is 2 / 2**5, and all-same-sign reaches it
    d = np.array([0.0, 1, 1, 2, 2, 3]) / 360
    res = paired_test(d + 0.9, np.full(6, 0.9))
    assert res["n_nonzero"] == 5 and res["n_tied"] == 2
    assert res["min_attainable_p"] == pytest.approx(2 / 32) and res["p"] == pytest.approx(2 / 32)
    assert not res["alpha_reachable"]
    eight = paired_test(np.arange(8) * 0.01 + 0.5 + 1 / 360, np.arange(8) * 0.01 + 0.5)  # all tied, all positive
    assert eight["p"] == pytest.approx(2 / 256) and eight["alpha_reachable"]


def test_zero_differences():
    res = paired_test(np.ones(6), np.ones(6))
    assert res["p"] == 1.0 and res["n_nonzero"] == 0 and res["cohen_dz"] is None and res["min_attainable_p"] == 1.0


def test_benjamini_hochberg_worked_example():
    # p sorted 0.01, 0.02, 0.03, 0.04, 0.05 with m = 5: p_(i) * m / i = 0.05 for all i
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.02, 0.05]) == pytest.approx([0.05] * 5)
    # 0.001, 0.01, 0.5 (m = 3): 0.003, 0.015, 0.5
    assert benjamini_hochberg([0.5, 0.001, 0.01]) == pytest.approx([0.5, 0.003, 0.015])


def _comp(name, s, c, sig):
    return {"name": name, "strategy": dict(enumerate(s)), "control": dict(enumerate(c)), "signature": sig}


def test_identical_subsets_are_one_comparison_for_bh():
    up = [0.9 + i / 360 for i in range(1, 7)]
    base = [0.9] * 6
    comps = [
        _comp("select-helpful@0.4", up, base, ("A", "a")),
        _comp("remove-harmful@0.6", up, base, ("A", "a")),  # same ids on both sides
        _comp("remove-harmful@0.05", base, up, ("B", "b")),
    ]
    rows = {r["name"]: r for r in compare(comps, 0.05, 200)}
    assert rows["remove-harmful@0.6"]["same_as"] == "select-helpful@0.4" and rows["select-helpful@0.4"]["same_as"] is None
    # BH over 2 distinct p-values (2/64 each), not 3
    assert rows["select-helpful@0.4"]["p_bh"] == pytest.approx(2 / 64)
    assert rows["remove-harmful@0.6"]["p_bh"] == rows["select-helpful@0.4"]["p_bh"]
    assert rows["remove-harmful@0.05"]["mean_diff"] < 0 and rows["remove-harmful@0.05"]["significant"]


def test_compare_requires_matching_seeds():
    with pytest.raises(KeyError, match="different seeds"):
        compare([{"name": "x", "strategy": {0: 1.0, 1: 2.0}, "control": {0: 0.5, 2: 1.5}, "signature": None}], 0.05, 200)


def test_effect_size_and_bootstrap_are_deterministic():
    d = np.array([0.1, 0.2, 0.0, 0.3])
    assert cohen_dz(d) == pytest.approx(d.mean() / d.std(ddof=1))
    assert bootstrap_median_ci(d, 500, seed=1) == bootstrap_median_ci(d, 500, seed=1)
