import numpy as np
import pytest
from scipy import stats as st

from sampleval.stats import benjamini_hochberg, bootstrap_median_ci, cohen_dz, compare, min_attainable_p, paired_test, s_shapedness


def test_min_attainable_p():
    assert min_attainable_p(5) == 0.0625
    assert min_attainable_p(6) == 0.03125
    assert min_attainable_p(8) == 2 / 256
    assert min_attainable_p(6, "greater") == 1 / 64


def test_paired_test_matches_scipy_exact():
    a = np.array([0.91, 0.93, 0.95, 0.90, 0.96, 0.94, 0.97, 0.92])
    b = a - np.array([0.011, 0.023, 0.031, -0.012, 0.024, 0.016, 0.035, -0.004])  # distinct |d|: exact null
    res = paired_test(a, b)
    ref = st.wilcoxon(a, b, method="exact")
    assert res["p"] == pytest.approx(ref.pvalue) and res["method"] == "exact"
    assert res["wilcoxon_statistic"] == pytest.approx(ref.statistic)
    d = a - b
    assert res["cohen_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert res["median_diff"] == pytest.approx(np.median(d))
    assert res["median_diff_ci_low"] <= res["median_diff"] <= res["median_diff_ci_high"]


def test_all_positive_differences_reach_min_p():
    a = np.arange(8) * 0.01 + 0.5
    res = paired_test(a + np.arange(1, 9) * 1e-3, a)
    assert res["p"] == pytest.approx(2 / 256)
    assert res["alpha_reachable"]


def test_zero_differences_and_too_few_seeds():
    res = paired_test(np.ones(6), np.ones(6))
    assert res["p"] == 1.0 and res["n_nonzero"] == 0 and res["cohen_dz"] is None
    five = paired_test(np.arange(5) + 1.0, np.zeros(5))
    assert five["min_attainable_p"] == 0.0625 and not five["alpha_reachable"]


def test_benjamini_hochberg_worked_example():
    # Worked example: p sorted 0.01, 0.02, 0.03, 0.04, 0.05 with m = 5:
    # p_(i) * m / i = 0.05 for all i -> every q = 0.05
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.02, 0.05]) == pytest.approx([0.05] * 5)
    # 0.001, 0.01, 0.5 (m = 3): 0.003, 0.015, 0.5
    assert benjamini_hochberg([0.5, 0.001, 0.01]) == pytest.approx([0.5, 0.003, 0.015])


def test_compare_requires_every_cell_and_matching_seeds():
    results = {("remove-harmful", 0.1): {0: 1.0, 1: 2.0}, ("remove-random", 0.1): {0: 0.5, 1: 1.5}}
    rows = compare(results, [("remove-harmful", "remove-random", 0.1)], 0.05, 200)
    assert rows[0]["mean_diff"] == pytest.approx(0.5) and "p_bh" in rows[0]
    with pytest.raises(KeyError, match="missing subset cell"):
        compare(results, [("remove-helpful", "remove-random", 0.1)], 0.05, 200)
    results[("remove-random", 0.1)] = {0: 0.5, 2: 1.5}
    with pytest.raises(KeyError, match="different seeds"):
        compare(results, [("remove-harmful", "remove-random", 0.1)], 0.05, 200)


def test_effect_size_and_bootstrap_are_deterministic():
    d = np.array([0.1, 0.2, 0.0, 0.3])
    assert cohen_dz(d) == pytest.approx(d.mean() / d.std(ddof=1))
    assert bootstrap_median_ci(d, 500, seed=1) == bootstrap_median_ci(d, 500, seed=1)


def test_s_shapedness_straight_line_is_zero_and_s_shape_negative():
    assert s_shapedness(np.linspace(-1, 1, 101)) == pytest.approx(0.0, abs=1e-12)
    s = np.concatenate([np.linspace(-10, -1, 5), np.zeros(91), np.linspace(1, 10, 5)])
    assert s_shapedness(s) < -0.5


def test_ties_use_normal_approximation_like_scipy():
    a = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    b = a - np.array([0.1, 0.1, 0.2, -0.1, 0.3, 0.2])
    res = paired_test(a, b)
    assert res["method"] == "normal-approx"
    assert res["p"] == pytest.approx(st.wilcoxon(a, b, method="approx").pvalue)
