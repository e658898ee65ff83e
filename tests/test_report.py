from sampleval.cells import CellKey
from sampleval.report import SECTIONS, ReportInputs, render_report

PARAMS = {
    "data": {"source": "digits"},
    "noise": {"kind": "pairwise", "rate": 0.4, "pairs": [[9, 4]]},
    "model": {"name": "small_cnn"},
    "train": {"epochs": 3},
    "influence": {"tracin_method": "central"},
    "subsets": {"scores": ["tracin"], "variants": ["global"]},
}
METRICS = {"accuracy": 0.9, "macro_f1": 0.8, "macro_auroc": 0.95, "ece": 0.1}


def _row(strategy, fraction, diff, q, same_as=None):
    return {
        "name": f"tracin/global/{strategy}@{fraction}", "ranking": "tracin", "variant": "global", "strategy_name": strategy,
        "control_name": f"random/global/remove-random@{fraction}", "fraction": fraction,
        "strategy_mean": 0.9 + diff, "control_mean": 0.9, "mean_diff": diff, "median_diff": diff,
        "median_diff_ci_low": diff - 0.01, "median_diff_ci_high": diff + 0.01, "cohen_dz": 1.0, "p": q, "p_bh": q,
        "min_attainable_p": 0.0312, "significant": q <= 0.05, "same_as": same_as,
    }


def _cell(key, chosen):
    return {"ranking": key.ranking, "variant": key.variant, "strategy": key.strategy, "fraction": key.fraction, "n_train": 100,
            "train_class_composition": {"3": 50, "4": 50},
            "seeds": {"0": {"n_chosen": sum(chosen.values()), "flipped_in_chosen": 4, "chosen_class_composition": chosen}}}


def _inputs():
    influence = {
        "n_train": 100, "n_flipped": 10,
        "tracin": {"s_shapedness": -0.5, "detect": {"found_in_top_n_flipped": 0.8, "found_inspecting_5pct": 0.5,
                                                    "found_inspecting_10pct": 1.0, "found_inspecting_20pct": 1.0, "auroc": 0.97}},
        "agreement": {"spearman": 0.99, "pearson": 0.98, "max_rel_error": 3e-4},
    }
    rows = [_row("remove-harmful", 0.05, 0.02, 0.01), _row("remove-harmful", 0.35, -0.05, 0.01),
            _row("select-helpful", 0.65, -0.05, 0.01, same_as="tracin/global/remove-harmful@0.35")]
    stats = {"metric": "test.accuracy", "alpha": 0.05, "n_seeds": 6, "n_rows": 3, "n_comparisons": 2, "warnings": [],
             "comparisons": {r["name"]: r for r in rows}}
    cells = {
        CellKey("tracin", "global", "remove-harmful", 0.05): _cell(CellKey("tracin", "global", "remove-harmful", 0.05), {"3": 2, "4": 3}),
        CellKey("tracin", "global", "remove-harmful", 0.35): _cell(CellKey("tracin", "global", "remove-harmful", 0.35), {"3": 34, "4": 1}),
    }
    return ReportInputs({"val": METRICS, "test": METRICS, "best_epoch": 2}, influence, stats, PARAMS, cells=cells)


def test_answer_names_the_class_deletion_confound_and_counts_coinciding_cells_once():
    text = render_report(_inputs())
    assert "Of 2 distinct comparisons, 1 are significantly better than random (`tracin/global/remove-harmful@0.05`) and 1 significantly worse" in text
    assert "None of the significant ones strips a class." in text  # 34 of 50 removed vs 35 %: 1.94x, not more than twice
    assert text.count("no class stripped") == 2
    assert "| tracin | global | remove-harmful | 0.05 | better than random |" in text
    assert "`tracin/global/select-helpful@0.65` = `tracin/global/remove-harmful@0.35`" in text
    assert "finds 8 of the 10 flipped labels among its 10 most suspicious" in text
    assert "4 of 5" in text  # flipped labels in the removed set


def test_composition_section_bolds_stripped_classes():
    inp = _inputs()
    key = CellKey("tracin", "global", "remove-harmful", 0.35)
    for cell in inp.cells.values():
        cell["train_class_composition"] = {"3": 40, "4": 60}  # 34/40 removed vs 35 % on average: 2.4x
    text = render_report(inp)
    assert "1 of the significant ones come with a stripped class: `tracin/global/remove-harmful@0.35`" in text
    assert "| tracin/global/remove-harmful@0.35 | 35 | **97.1** | 2.9 |" in text
    assert "| full training set | 100 | 40.0 | 60.0 |" in text
    assert "class-deletion confound: 3 (85 % removed vs 35 %, 2.4x)" in text
    inp.cells[key]["seeds"]["0"]["chosen_flipped_class_composition"] = {"3": 30, "4": 0}
    assert "3 (85 % removed vs 35 %, 2.4x; 30 of its 34 removed carry a flipped label)" in render_report(inp)
    key = CellKey("tracin", "global", "select-helpful", 0.65)
    inp.cells[key] = _cell(key, {"3": 65, "4": 0})
    assert "class-deletion confound: 4 (0 % selected vs 65 %: none kept)" in render_report(inp)


def test_every_number_comes_from_the_inputs():
    text = render_report(_inputs())
    assert "1e-4" not in text and "float64" not in text  # no fixed claims
    assert "3.0e-04 of the largest score" in text
    assert [s.__name__ for s in SECTIONS][:2] == ["section_header", "section_baseline"]
    only = render_report(_inputs(), sections=[SECTIONS[0]])
    assert only.startswith("# Sample valuation report") and "## Answer" not in only


def test_detection_section_names_rankings_that_fail_somewhere():
    from sampleval.report import ReportInputs, section_detection

    cell = lambda m: {"auroc_mean": m, "auroc_sd": 0.01}  # noqa: E731
    det = {
        "settings": {"pair": {"kind": "systematic", "rate": 0.4}, "uni": {"kind": "uniform", "rate": 0.1}},
        "seeds": [0, 1, 2], "development_seeds": [0], "rankings": ["tracin", "loss", "random"],
        "table": {"pair": {"tracin": cell(0.999), "loss": cell(0.99), "random": cell(0.5)},
                  "uni": {"tracin": cell(0.70), "loss": cell(0.999), "random": cell(0.5)}},
        "recommended": {"ranking": "loss", "development": {"n_cells": 2, "n_at_least_cleanlab": 2},
                        "held_out": {"n_cells": 4, "n_at_least_cleanlab": 3}},
        "advice": {}, "stability": {"setting": "pair", "seeds": [0, 1, 2], "top_share": 0.05,
                                    "rankings": {"tracin": {"auroc_min": 0.6, "auroc_max": 1.0, "top5_jaccard_mean": 0.5, "top5_jaccard_min": 0.2}}},
    }
    text = "\n".join(section_detection(ReportInputs({}, {}, {}, {}, extra={"detection": det})))
    assert "`tracin` (AUROC 0.700 at uni)" in text and "`loss` (AUROC" not in text  # random is the chance line, not a claim
    assert "| tracin | 0.600-1.000 | 0.50 (0.20) |" in text and "3 of 4 held-out" in text
    assert section_detection(ReportInputs({}, {}, {}, {})) == []
