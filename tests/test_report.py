from dataclasses import replace

from sampleval.data.settings import NoiseParams
from sampleval.experiments.subset_cells import CellKey
from sampleval.reporting.report import SECTIONS, render_report
from sampleval.reporting.report_inputs import ReportInputs
from typed_params import committed

_P = committed()  # the digits, 40 % of training 9s -> 4, small_cnn
PARAMS = replace(_P, train=replace(_P.train, epochs=3), influence=replace(_P.influence, tracin_method="central"),
                 subsets=replace(_P.subsets, scores=["tracin"], variants=["global"]))
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
    assert [s.__name__ for s in SECTIONS][:3] == ["section_header", "section_corrections", "section_baseline"]
    only = render_report(_inputs(), sections=[SECTIONS[0]])
    assert only.startswith("# Sample valuation report") and "## Answer" not in only


def test_detection_section_names_rankings_that_fail_somewhere():
    from sampleval.reporting.sections_labels import section_detection

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
    text = "\n".join(section_detection(ReportInputs({}, {}, {}, None, extra={"detection": det})))
    assert "`tracin` (AUROC 0.700 at uni)" in text and "`loss` (AUROC" not in text  # random is the chance line, not a claim
    assert "| tracin | 0.600-1.000 | 0.50 (0.20) |" in text and "3 of 4 held-out" in text
    assert section_detection(ReportInputs({}, {}, {}, None)) == []


def _headline_inputs():
    inp = _inputs()
    inp.params = replace(PARAMS, seed=0, noise=NoiseParams("pairwise", 0.4, [[9, 4]], ["train"]),
                         detect=replace(PARAMS.detect, stability_setting="pair"))
    cell = lambda setting, seed, noise_seed, found: {  # noqa: E731
        "setting": setting, "seed": seed, "n_flipped": 10,
        "noise": {"kind": "pairwise", "rate": 0.4, "pairs": [[9, 4]], "splits": ["train"], "noise_seed": noise_seed},
        "rankings": {"loss": {"found_top_5pct": found}}}
    inp.extra = {
        "detection": {"recommended": {"ranking": "loss"},
                      "table": {"pair": {"loss": {"auroc_mean": 0.97, "average_precision_mean": 0.61}}, "uni": {}}},
        # the main run is seed 0 with the default noise: not the cell with another noise draw, not seed 1
        "detection_cells": [cell("pair", 0, 5, 0.1), cell("pair", 1, None, 0.2), cell("pair", 0, None, 0.9)],
        "refine": {"rounds": 2, "ranking": "tracin", "tests": {"test_accuracy": {
            "round_1": {"mean_diff": 0.5, "p_bh": 0.5}, "round_2": {"mean_diff": 0.0199, "p_bh": 0.0938}}}},
    }
    inp.fidelity = {"network": {"tracin": {"lds": 0.27}, "loss": {"lds": 0.31}, "if_cg": {"lds": None}}}
    return inp


def test_headline_has_ten_flat_numbers_from_the_metrics():
    from sampleval.reporting.headline import finding, headline

    h = headline(_headline_inputs())
    assert h == {"test_accuracy": 0.9, "n_flipped": 10, "flips_top5": 9, "rec_auroc": 0.97, "rec_ap": 0.61,
                 "best_diff": 0.02, "best_q": 0.01, "best_min_p": 0.0312, "best_vs_matched_diff": None, "best_vs_matched_q": None,
                 "refine_gain": 0.0199, "refine_q": 0.0938, "lds_best": 0.31}
    # the main run's own suspects table wins over the sweep cell; the class-matched control of the best strategy is quoted
    inp = _headline_inputs()
    inp.extra["suspects"] = {"found_top5": {"k": 60, "n_flipped": 10, "found": 10}}
    best = max(inp.stats["comparisons"].values(), key=lambda r: r["mean_diff"])
    inp.stats = {**inp.stats, "class_matched": {best["name"]: {**best, "mean_diff": 0.005, "p_bh": 0.2}}}
    h = headline(inp)
    assert h["flips_top5"] == 10 and h["best_vs_matched_diff"] == 0.005 and h["best_vs_matched_q"] == 0.2
    assert "by +0.5 points against random samples of the same classes (q 0.2000), so not distinguishable from thinning" in finding(inp)
    # coinciding cells count once and the largest difference wins; a missing source gives None, not an error
    empty = headline(ReportInputs({"test": {"accuracy": 0.5}}, {}, {}, replace(PARAMS, seed=0, noise=NoiseParams("none", 0.0, [], ["train"]))))
    assert empty["test_accuracy"] == 0.5 and all(v is None for k, v in empty.items() if k != "test_accuracy")


def test_first_line_says_what_was_found():
    text = render_report(_headline_inputs(), sections=[SECTIONS[0]])
    first = text.splitlines()[2]
    assert first == (
        "**Found 9 of the 10 injected label flips in the top 5 % of the recommended ranking `loss` (AUROC 0.970, mean over "
        "the sweep's seeds at `pair`); removing the 5 % most harmful training samples by `tracin` (global) changes test "
        "accuracy by +2.0 points against random removal of the same size (BH q 0.0100, 6 seeds); after 2 rounds of refinement by "
        "`tracin`, test accuracy differs from random removal by +2.0 points (q 0.0938).**")
    inp = _inputs()
    inp.influence = {**inp.influence, "n_flipped": 0}
    assert render_report(inp).splitlines()[2].startswith("**No label noise was injected")


def test_figures_are_linked_under_their_section_and_embedded_in_the_html(tmp_path):
    from sampleval.reporting.report import render_html

    inp = _inputs()
    inp.figures = frozenset({"plots/train_curve.png", "plots/composition.png"})
    text = render_report(inp)
    lines = text.splitlines()
    curve = lines.index("![Training curve (loss per epoch; the selected epoch marked)](plots/train_curve.png)")
    assert lines.index("## Baseline (best epoch chosen on validation)") < curve < lines.index("## Influence")
    comp = lines.index("![Class composition of the removed / selected sets](plots/composition.png)")
    assert lines.index("## Class composition of the removed / selected sets") < comp < lines.index("## Answer")
    assert "plots/subsets.png" not in text  # not there: not linked
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "train_curve.png").write_bytes(b"\x89PNG fake")
    page = render_html(text, tmp_path)
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page and "<h2>Answer</h2>" in page
    assert 'src="data:image/png;base64,iVBORyBmYWtl"' in page  # embedded: no file needed next to the page
    assert 'src="plots/composition.png"' in page  # a missing file stays a link


def test_header_says_own_data_has_no_injected_noise_and_the_sweep_runs_on_digits():
    inp = _inputs()
    inp.params = replace(PARAMS, data=replace(PARAMS.data, source="table"), noise=replace(PARAMS.noise, kind="none"))
    header = "\n".join(SECTIONS[0](inp))
    assert "Data: `table`, no injected label noise; model" in header
    assert "detection sweep below is a benchmark on the embedded digits" in header
    assert "benchmark on the embedded digits" not in "\n".join(SECTIONS[0](_inputs()))
