from sampleval.report import render_report

PARAMS = {
    "data": {"source": "digits"},
    "noise": {"kind": "pairwise", "rate": 0.4, "pairs": [[9, 4]]},
    "model": {"name": "small_cnn"},
    "train": {"epochs": 3},
    "subsets": {"score": "tracin"},
}
METRICS = {"accuracy": 0.9, "macro_f1": 0.8, "macro_auroc": 0.95, "ece": 0.1}


def _row(strategy, fraction, diff, q):
    return {
        "strategy": strategy, "control": "remove-random", "fraction": fraction, "strategy_mean": 0.9 + diff, "control_mean": 0.9,
        "mean_diff": diff, "median_diff": diff, "median_diff_ci_low": diff - 0.01, "median_diff_ci_high": diff + 0.01,
        "cohen_dz": 1.0, "p": q, "p_bh": q, "min_attainable_p": 0.0078, "significant": q <= 0.05,
    }


def test_report_answers_the_question_from_the_metrics():
    influence = {
        "n_train": 100, "n_flipped": 10,
        "tracin": {"s_shapedness": -0.5, "detect": {"found_in_top_n_flipped": 0.8, "found_inspecting_5pct": 0.5,
                                                    "found_inspecting_10pct": 1.0, "found_inspecting_20pct": 1.0, "auroc": 0.97}},
    }
    stats = {
        "metric": "test.accuracy", "alpha": 0.05, "n_seeds": 8, "n_comparisons": 3, "warnings": [],
        "comparisons": {"a": _row("remove-harmful", 0.05, 0.02, 0.01), "b": _row("remove-harmful", 0.35, -0.05, 0.01),
                        "c": _row("remove-harmful", 0.15, 0.001, 0.4)},
    }
    text = render_report({"val": METRICS, "test": METRICS, "best_epoch": 2}, influence, stats, PARAMS)
    assert "beats removing random ones (BH q <= 0.05, higher mean) at 1 of 3 fractions (0.05); it is significantly worse at 1." in text
    assert "finds 8 of the 10 flipped labels among its 10 most harmful" in text
    assert "| remove-harmful | 0.15 |" in text and text.count("| yes |") == 2
