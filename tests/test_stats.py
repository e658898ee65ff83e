import itertools
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats as st

from sampleval.experiments.stats import (
    benjamini_hochberg,
    bootstrap_median_ci,
    cohen_dz,
    compare,
    min_attainable_p,
    paired_test,
    sign_flip_test,
    signed_rank_statistic,
)
from typed_params import committed


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


def test_equal_count_differences_are_ties_where_rounded_accuracies_split_them():
    # two seeds both +2 of 360: 326/360 - 324/360 and 327/360 - 325/360 round to 0.0056 and 0.0055
    strategy, control = np.array([326, 327]), np.array([324, 325])
    assert len(set(np.round(strategy / 360, 4) - np.round(control / 360, 4))) == 2
    res = paired_test(strategy, control, n_test=360, n_bootstrap=200)
    assert res["differences"] == [2, 2] and res["n_tied"] == 1 and res["tested_on"] == "correct counts"
    assert res["mean_diff"] == pytest.approx(2 / 360) and res["median_diff_ci_low"] == pytest.approx(2 / 360)
    # eight seeds where the rounding changes p and n_tied: the counts' p is the permutation test's on the integers
    s = np.array([330, 332, 342, 343, 319, 326, 339, 343])
    c = np.array([331, 332, 338, 343, 320, 323, 340, 343])
    counts = paired_test(s, c, n_test=360, n_bootstrap=200)
    rounded = paired_test(np.round(s / 360, 4), np.round(c / 360, 4), n_bootstrap=200)
    d = s - c  # -1 0 4 0 -1 3 -1 0: three tied at |1|
    assert counts["n_nonzero"] == 5 and counts["n_tied"] == 2 and rounded["n_tied"] == 1
    assert counts["p"] == pytest.approx(_scipy_permutation(d)) and counts["p"] == pytest.approx(_by_hand(d)) == 0.8125
    assert rounded["p"] != counts["p"]
    assert counts["min_attainable_p"] == 2 / 2**5


def test_count_test_matches_scipy_wilcoxon_exact_on_distinct_integer_differences():
    c = np.array([320, 325, 330, 318, 333, 327, 329, 322])
    d = np.array([3, -1, 5, 2, 7, -4, 6, 8])  # distinct |d|, no zeros: scipy's exact null applies
    res = paired_test(c + d, c, n_test=360, n_bootstrap=200)
    assert res["p"] == pytest.approx(st.wilcoxon(d, method="exact").pvalue)
    assert res["n_tied"] == 0 and res["cohen_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    with pytest.raises(ValueError, match="must be integers"):
        paired_test(np.array([0.9, 0.8]), np.array([0.8, 0.8]), n_test=360)


def test_compare_reports_counts_as_accuracies():
    comps = [{"name": "x", "strategy": {0: 330, 1: 331}, "control": {0: 328, 1: 329}, "signature": None, "n_test": 360}]
    (row,) = compare(comps, 0.05, 200)
    assert row["strategy_mean"] == pytest.approx(330.5 / 360) and row["control_mean"] == pytest.approx(328.5 / 360)
    assert row["differences"] == [2, 2] and row["n_test"] == 360 and "strategy" not in row


def _answer_inputs(matched_q: float, matched_flipped: int):
    from sampleval.experiments.subset_cells import CellKey
    from sampleval.reporting.report_inputs import ReportInputs

    def row(name, control, kind, diff, q):
        return {"name": name, "ranking": "tracin", "variant": "global", "strategy_name": "remove-harmful", "fraction": 0.05,
                "control_name": control, "control_kind": kind, "strategy_mean": 0.95, "control_mean": 0.95 - diff, "mean_diff": diff,
                "median_diff": diff, "median_diff_ci_low": diff, "median_diff_ci_high": diff, "cohen_dz": 2.0, "p": q, "p_bh": q,
                "min_attainable_p": 0.0078, "significant": q <= 0.05, "same_as": None}

    cell = CellKey("tracin", "global", "remove-harmful", 0.05)
    plain = row(cell.name, "random/global/remove-random@0.05", "random", 0.01, 0.01)
    vs = row(f"{cell.name} vs class-matched", "tracin/global/remove-harmful-matched@0.05", "class-matched", 0.008, matched_q)

    def record(key, flipped):
        return {"ranking": key.ranking, "variant": "global", "strategy": key.strategy, "fraction": 0.05, "n_train": 100,
                "train_class_composition": {"4": 30, "9": 70},
                "seeds": {"0": {"n_chosen": 5, "flipped_in_chosen": flipped, "chosen_class_composition": {"4": 5, "9": 0}}}}

    mkey = CellKey("tracin", "global", "remove-harmful-matched", 0.05)
    stats = {"metric": "test.accuracy", "alpha": 0.05, "n_seeds": 8, "n_rows": 2, "n_comparisons": 2, "warnings": [],
             "tested_on": "correct counts", "comparisons": {cell.name: plain}, "class_matched": {cell.name: vs}}
    p = committed()
    params = replace(p, subsets=replace(p.subsets, scores=["tracin"]))
    return ReportInputs({}, {"n_flipped": 0}, stats, params, cells={cell: record(cell, 5), mkey: record(mkey, matched_flipped)})


def test_answer_separates_wrong_labels_removed_from_class_thinned():
    from sampleval.reporting.sections_subsets import section_answer, section_subsets

    text = "\n".join(section_answer(_answer_inputs(0.02, 1)))
    assert "| 0.0080, p 0.0200, q 0.0200, min p 0.0078 | wrong labels removed: beats removing as many random samples of the same classes (5 vs 1 flipped" in text
    assert "class-deletion confound: 4" in text  # 5 of 5 removed are 4s
    assert "1 strip a class but beat their class-matched control, so the lost class does not explain them" in text
    thinned = "\n".join(section_answer(_answer_inputs(0.2, 1)))
    assert "class thinned: no better than removing as many random samples of the same classes" in thinned
    assert "1 of the significant ones come with a stripped class: `tracin/global/remove-harmful@0.05` (not beating the class-matched control)." in thinned
    table = "\n".join(section_subsets(_answer_inputs(0.2, 1)))
    assert "| tracin | global | remove-harmful | 0.05 | class-matched |" in table and "integer correct-counts" in table


def test_refine_section_reports_min_attainable_p():
    from sampleval.reporting.report_inputs import ReportInputs
    from sampleval.reporting.sections_labels import section_refine

    entry = {"test_accuracy": 0.9, "flipped_remaining": 40.0, "dcs": 0.1, "heldout_loss": 0.3}
    ref = {"rounds": 1, "n_remove_per_round": 58, "ranking": "tracin", "n_seeds": 8, "dcs_score": "tracin", "n_val_heldout": 120,
           "refined": {"round_0": entry, "round_1": entry}, "random": {"round_0": entry, "round_1": entry},
           "tests": {"test_accuracy": {"round_1": {"p": 0.0078, "p_bh": 0.0078, "min_attainable_p": 0.0078125, "cohen_dz": 1.0,
                                                   "tested_on": "correct counts"}}}}
    text = "\n".join(section_refine(ReportInputs({}, {}, {}, None, extra={"refine": ref})))
    assert "| min attainable p |" in text and "| 1 | 0.9000 | 0.9000 | 0.0078 | 0.0078 | 0.0078 |" in text
    assert "integer correct-counts" in text
