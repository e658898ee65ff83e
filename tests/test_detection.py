"""The detection sweep: cleanlab out-of-fold usage, metrics and threshold curves on hand
cases, the summary, and one tiny cell end to end."""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sampleval.config import ParamsError, validate, typed
from sampleval.detection.cell import run_cell
from sampleval.detection.recipe import CellRecipe, NoiseSetting
from sampleval.detection.quality import detection_metrics, flag_metrics, inspection_curve, jaccard_top, normalise, threshold_curve
from sampleval.detection.oof import cleanlab_scores, noise_structure
from sampleval.detection.rankings import orient, rank_average
from sampleval.detection.summary import pipeline_cell, recommended_by_setting, recommended_ranking, structure_class, summarise
from sampleval.detection.settings import RecommendParams
from sampleval.detection.summary_markdown import markdown
from typed_params import committed

ROOT = Path(__file__).resolve().parents[1]


def _params():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


# --- cleanlab out of fold (the fold engine itself: tests/test_out_of_fold.py) ---------

def test_cleanlab_scores_are_cleanlabs_functions():
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 30)
    probs = rng.dirichlet(np.ones(3) * 0.5, size=90)
    probs[np.arange(90), labels] += 2.0
    probs[:6] = probs[:6][:, ::-1]  # a few confidently "wrong" rows
    probs /= probs.sum(1, keepdims=True)
    out = cleanlab_scores(labels, probs)
    np.testing.assert_array_equal(out["quality"], get_label_quality_scores(labels, probs))
    np.testing.assert_array_equal(out["issue"], find_label_issues(labels, probs))
    np.testing.assert_allclose(out["quality"], probs[np.arange(90), labels])  # self_confidence: p(given label)
    assert out["issue"].any()


# --- metrics ---------------------------------------------------------------------------

def test_threshold_curve_hand_case():
    flipped = np.array([True, False, False, True])
    s = np.array([2.0, 1.0, -1.0, 0.5])  # normalised: 1, 0.5, -0.5, 0.25
    np.testing.assert_allclose(normalise(s), [1, 0.5, -0.5, 0.25])
    c = threshold_curve(flipped, s, np.array([0.0, 0.2, 0.5, 1.0]))
    np.testing.assert_allclose(c["found"], [1.0, 1.0, 0.5, 0.0])  # "exceeding": strictly above
    np.testing.assert_allclose(c["fpr"], [0.5, 0.5, 0.0, 0.0])
    # no positive score: scaled by the largest magnitude, nothing exceeds 0
    np.testing.assert_allclose(normalise(np.array([-2.0, -1.0])), [-1.0, -0.5])
    assert threshold_curve(flipped[:2], np.array([-2.0, -1.0]), np.array([0.0]))["found"][0] == 0


def test_detection_metrics_hand_case():
    flipped = np.zeros(20, bool)
    flipped[[0, 1, 5]] = True
    s = -np.arange(20.0)  # sample 0 most suspicious, then 1, 2, ...
    m = detection_metrics(flipped, s)
    # negatives ranked above flip 5: samples 2, 3, 4 (3 of 17) -> AUROC = 1 - 3/(3*17)
    assert m["auroc"] == pytest.approx(1 - 3 / 51)
    assert m["average_precision"] == pytest.approx((1 + 1 + 3 / 6) / 3)
    assert m["found_top_5pct"] == pytest.approx(1 / 3)  # top 1 sample
    assert m["found_top_10pct"] == pytest.approx(2 / 3)
    assert m["found_top_20pct"] == pytest.approx(2 / 3)  # top 4: 0, 1, 2, 3
    assert m["found_top_1pct"] == 0  # round(0.2) = 0 samples inspected
    assert detection_metrics(np.zeros(5, bool), np.arange(5.0)) == {}
    grid, found = inspection_curve(flipped, s, n_points=21)
    assert found[0] == 0 and found[-1] == 1 and found[1] == pytest.approx(1 / 3)


def test_flag_metrics_and_jaccard():
    f = flag_metrics(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool))
    assert f == {"n_flagged": 2, "precision": 0.5, "recall": 0.5, "fpr": 0.5}
    ids = np.array([f"s{i}" for i in range(20)])
    # top 10 % = 2 ids each; one shared -> 1/3; only common ids count
    assert jaccard_top(ids, -np.arange(20.0), ids, np.r_[[0.0, 5.0, 9.0], np.zeros(17)], 0.1) == pytest.approx(1 / 3)


def test_orientation_and_rank_average():
    assert orient("tracin", np.array([1.0, -2.0])).tolist() == [-1.0, 2.0]
    assert orient("tracin_last_layer_self_influence", np.array([3.0])).tolist() == [3.0]
    cols = {"a": np.array([3.0, 1.0, 2.0]), "b": np.array([1.0, 2.0, 3.0])}
    np.testing.assert_allclose(rank_average(cols, ["a", "b"]), [(1 + 1 / 3) / 2, (1 / 3 + 2 / 3) / 2, (2 / 3 + 1) / 2])
    with pytest.raises(ValueError, match="detect.rankings"):
        rank_average(cols, ["a", "c"])


# --- params ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda d: d["settings"].update(bad={"kind": "uniform", "rate": 1.5}), "detect.settings"),
        (lambda d: d["settings"].update(bad={"kind": "pairwise", "rate": 0.2}), "detect.settings"),
        (lambda d: d.update(rankings=["tracin", "cleanlab"]), "detect.rankings"),
        (lambda d: d.update(seeds=[0, 1]), "detect.seeds"),
    ],
)
def test_bad_detect_params_fail_naming_the_key(edit, key):
    params = _params()
    edit(params["detect"])
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        validate(params)


def test_detect_cross_key_rules():
    params = _params()
    params["detect"]["run"] = ["nope"]
    with pytest.raises(ParamsError, match="detect.run"):
        typed(params)
    params = _params()
    params["detect"]["development_seeds"] = []
    with pytest.raises(ParamsError, match="detect.development_seeds"):
        typed(params)
    params = _params()
    params["detect"]["recommend"]["rule"] = "loss_cleanlab"  # a ranking is not a rule: the pipeline chooses the ranking
    with pytest.raises(ParamsError, match=r"detect\.recommend\.rule.*best_mean, noise_structure"):
        validate(params)
    params = _params()
    params["detect"]["combinations"] = {"mix": ["loss", "self_influence"]}  # self_influence not computed by default
    with pytest.raises(ParamsError, match="detect.combinations.mix"):
        typed(params)


# --- summary on synthetic cells ----------------------------------------------------------

# noise_structure of a uniform and of a one-pair cell (as oof.noise_structure reports them)
STRUCTURE = {"u": {"noise_rate": 0.1, "top_pair_share": 0.06, "source_concentration": 0.35},
             "p": {"noise_rate": 0.03, "top_pair_share": 1.0, "source_concentration": 1.0}}


def _fake_cells(tmp_path, settings, seeds):
    """Cells where ``loss`` is good on ``u`` and weak on ``p``, ``infl`` the reverse."""
    rng = np.random.default_rng(0)
    for s in settings:
        for seed in seeds:
            n = 100
            flipped = np.zeros(n, bool)
            flipped[rng.choice(n, 10, replace=False)] = True
            good = flipped + rng.normal(0, 0.3 if s == "u" else 0.8, n)
            t = pd.DataFrame({"sample_id": [f"d{i}" for i in range(n)], "label": 0, "clean_label": 0, "flipped": flipped,
                              "loss": good, "infl": flipped + rng.normal(0, 0.8 if s == "u" else 0.2, n),
                              "cleanlab": flipped + rng.normal(0, 0.5, n), "random": rng.random(n)})
            t.to_parquet(tmp_path / f"{s}-s{seed}.parquet")
            rec = {"n_flipped": 10, "baseline": {"test_accuracy": 0.9}, "noise_structure": STRUCTURE[s],
                   "cleanlab_find_label_issues": flag_metrics(flipped, t["cleanlab"].to_numpy() > 0.5),
                   "rankings": {c: detection_metrics(flipped, t[c].to_numpy()) for c in ("loss", "infl", "cleanlab", "random")}}
            (tmp_path / f"{s}-s{seed}.json").write_text(json.dumps(rec))


def _fake_sweep(tmp_path):
    """Two fake settings (uniform u, pairwise p) x 3 seeds of cell records, and their detect params."""
    settings, seeds = ["u", "p"], [0, 1, 2]
    _fake_cells(tmp_path, settings, seeds)
    det = replace(committed().detect, settings={"u": {"kind": "uniform", "rate": 0.1}, "p": {"kind": "pairwise", "rate": 0.2, "pairs": [[9, 4]]}},
                  recommend=RecommendParams("best_mean"), stability_setting="p")
    return settings, seeds, det


def test_summary_compares_with_cleanlab_and_reports_stability(tmp_path):
    settings, seeds, det = _fake_sweep(tmp_path)
    summary, insp, thr = summarise(tmp_path, settings, seeds, det, development_seeds=[0])
    rec = summary["recommended"]
    assert rec["development"]["n_cells"] == 2 and rec["held_out"]["n_cells"] == 4
    assert rec["rule"] == "best_mean" and recommended_ranking(summary) == rec["ranking"] == rec["choice"]["overall"]
    assert {v["ranking"] for v in rec["cells"].values()} == {rec["ranking"]}  # best_mean: one ranking for every cell
    below = [c for c, v in rec["cells"].items() if v["auroc"] < v["cleanlab_auroc"]]
    assert sorted(rec["development"]["below_cleanlab"] + rec["held_out"]["below_cleanlab"]) == sorted(below)
    assert summary["paper_setting"]["setting"] == "p"
    st = summary["stability"]["rankings"]
    assert st["loss"]["auroc_min"] <= st["loss"]["auroc_mean"] <= st["loss"]["auroc_max"]
    assert 0 <= st["random"]["top5_jaccard_mean"] <= 1
    assert set(summary["advice"]) == {"uniform", "systematic (one class pair)"}
    assert list(insp["u"].columns) == ["inspected", "loss", "infl", "cleanlab", "random"]
    assert {"threshold", "loss_found", "loss_fpr"} <= set(thr["p"].columns)
    assert "| u |" in markdown(summary)
    with pytest.raises(FileNotFoundError, match="dvc repro detect"):
        summarise(tmp_path, settings, [0, 1, 2, 3], det, [0])


def test_lowest_auroc_over_cells_is_the_lowest_cell_not_a_mean(tmp_path):
    settings, seeds, det = _fake_sweep(tmp_path)
    summary, _, _ = summarise(tmp_path, settings, seeds, det, development_seeds=[0])
    a = summary["advice"]["uniform"]
    per_cell = {f"u-s{seed}": json.loads((tmp_path / f"u-s{seed}.json").read_text())["rankings"]["cleanlab"]["auroc"] for seed in seeds}
    assert a["cleanlab_worst_cell"] == min(per_cell, key=per_cell.get) and a["cleanlab_worst_auroc"] == min(per_cell.values())
    assert a["cleanlab_worst_auroc"] < summary["table"]["u"]["cleanlab"]["auroc_mean"]  # the mean would hide it
    assert a["best_worst_cell"] in markdown(summary)
    from sampleval.reporting.report_inputs import ReportInputs
    from sampleval.reporting.sections_labels import section_detection

    text = "\n".join(section_detection(ReportInputs({}, {}, {}, None, extra={"detection": {**summary, "development_seeds": [0]}})))
    assert f"lowest per-cell AUROC {a['best_worst_auroc']:.3f} at {a['best_worst_cell']}" in text
    assert "chosen by the pipeline (rule `best_mean`" in text and "of the cell's best ranking in" in text


def test_noise_structure_rule_chooses_per_structure_on_development_cells_only(tmp_path):
    settings, seeds = ["u", "p"], [0, 1, 2]
    _fake_cells(tmp_path, settings, seeds)
    det = replace(committed().detect, settings={"u": {"kind": "uniform", "rate": 0.1}, "p": {"kind": "pairwise", "rate": 0.2, "pairs": [[9, 4]]}},
                  recommend=RecommendParams("noise_structure"), stability_setting="p")
    summary, _, _ = summarise(tmp_path, settings, seeds, det, development_seeds=[0], target=("p", 1))
    rec = summary["recommended"]
    assert rec["choice"]["by_structure"] == {"uniform": {"ranking": "loss", "cells": ["u-s0"]}, "one pair": {"ranking": "infl", "cells": ["p-s0"]}}
    assert rec["ranking"] == "infl" and rec["target_cell"] == "p-s1" and "one pair" in rec["how"]
    assert all(v["ranking"] == ("loss" if c.startswith("u") else "infl") for c, v in rec["cells"].items())
    assert recommended_by_setting(summary) == {"u": "loss", "p": "infl"}  # what the curves highlight per setting
    for v in rec["cells"].values():
        assert v["auroc_shortfall"] >= 0 and v["ap_shortfall"] >= 0
        assert v["within_aim"] == (v["auroc_shortfall"] <= 0.01 and v["ap_shortfall"] <= 0.05)
    # the held-out cells' flips do not move the choice: scramble them and choose again
    for seed in (1, 2):
        path = tmp_path / f"p-s{seed}.json"
        r = json.loads(path.read_text())
        r["rankings"]["loss"]["auroc"], r["rankings"]["infl"]["auroc"] = 1.0, 0.0
        path.write_text(json.dumps(r))
    again, _, _ = summarise(tmp_path, settings, seeds, det, development_seeds=[0], target=("p", 1))
    assert again["recommended"]["ranking"] == "infl" and again["recommended"]["choice"] == rec["choice"]
    # no target (another data source): the choice over all development cells
    other, _, _ = summarise(tmp_path, settings, seeds, det, development_seeds=[0])
    assert other["recommended"]["ranking"] == rec["choice"]["overall"] and "no sweep cell" in other["recommended"]["how"]


def test_noise_structure_separates_uniform_one_pair_and_several_pairs():
    rng = np.random.default_rng(0)
    n, k = 2000, 10
    true = rng.integers(0, k, n)
    probs = np.full((n, k), 0.02)
    probs[np.arange(n), true] = 0.82  # a confident model that learned the true classes

    def noisy(kind):
        y = true.copy()
        if kind == "one pair":
            m = (true == 9) & (rng.random(n) < 0.4)
            y[m] = 4
        elif kind == "several pairs":
            m = rng.random(n) < 0.2
            y[m] = (true[m] + 1) % k
        else:
            m = rng.random(n) < 0.1
            y[m] = (true[m] + rng.integers(1, k, m.sum())) % k
        return y, m

    for kind in ("uniform", "one pair", "several pairs"):
        y, m = noisy(kind)
        ns = noise_structure(y, probs)
        assert structure_class(ns) == kind, (kind, ns)
        assert abs(ns["noise_rate"] - m.mean()) < 0.02
        assert np.array(ns["confident_joint"]).shape == (k, k)


def test_pipeline_cell_is_the_sweep_cell_with_the_pipelines_data():
    params = typed(_params())
    det = params.detect
    assert pipeline_cell(params, det.run, det.seeds) == ("pair94-40-fixed", 0)  # the default: 40 % of 9s -> 4, seed 0
    assert pipeline_cell(params, ["uniform-10"], det.seeds) is None
    params = replace(params, seed=2)
    assert pipeline_cell(params, det.run, det.seeds) is None  # pair94-40-fixed draws with noise_seed 0
    assert pipeline_cell(params, ["pair94-40"], det.seeds) == ("pair94-40", 2)
    params = replace(params, data=replace(params.data, source="table"))
    assert pipeline_cell(params, ["pair94-40"], det.seeds) is None


# --- one tiny cell end to end --------------------------------------------------------------

def test_tiny_cell_end_to_end():
    params = _params()
    params["data"]["limit"] = 300
    params["train"]["epochs"] = 2
    setting = NoiseSetting.from_params("p", {"kind": "pairwise", "rate": 0.4, "pairs": [[9, 4]]})
    table, record = run_cell(CellRecipe.of(typed(params)), setting, 1, ["loss", "tracin_last_layer", "cleanlab_logreg"], {"mix": ["loss", "cleanlab"]}, folds=2)
    assert list(table.columns[:4]) == ["sample_id", "label", "clean_label", "flipped"]
    rankings = ["loss", "tracin_last_layer", "tracin_last_layer_self_influence", "cleanlab_logreg", "cleanlab", "random", "mix"]
    assert list(table.columns[4:]) == rankings
    assert all(table[c].dtype == np.float64 for c in rankings)
    assert table["flipped"].sum() == record["n_flipped"] > 0
    assert ((table["label"] != table["clean_label"]) == table["flipped"]).all()
    assert set(table.loc[table["flipped"], "label"]) == {4}
    assert (table["loss"] > 0).all()  # oriented: the training loss itself
    assert table["cleanlab"].between(0, 1).all()
    assert set(record["rankings"]) == set(rankings)
    assert 0 <= record["rankings"]["cleanlab"]["auroc"] <= 1
    ns = record["noise_structure"]  # from cleanlab's confident joint: what detect.recommend.rule noise_structure reads
    assert np.array(ns["confident_joint"]).shape == (10, 10) and 0 <= ns["noise_rate"] <= 1
    table2, record2 = run_cell(CellRecipe.of(typed(params)), setting, 1, ["loss", "tracin_last_layer", "cleanlab_logreg"], {"mix": ["loss", "cleanlab"]}, folds=2)
    pd.testing.assert_frame_equal(table, table2)  # same params, same numbers


def test_registry_style_recommended_estimator_matches_the_cell(tmp_path):
    """estimate_loss_cleanlab (a registry-style estimator reading ctx.train_config and ctx.options) gives the cell's loss_cleanlab column."""
    from sampleval.detection.cell import digits_data, influence_context
    from sampleval.detection.estimators import estimate_loss_cleanlab
    from sampleval.training.retrain import train_and_evaluate

    params = _params()
    params["data"]["limit"] = 250
    params["train"]["epochs"] = 2
    setting = NoiseSetting.from_params("u", {"kind": "uniform", "rate": 0.1})
    recipe = CellRecipe.of(typed(params))
    table, _ = run_cell(recipe, setting, 2, ["loss"], {"loss_cleanlab": ["loss", "cleanlab"]}, folds=2)
    cfg = recipe.train
    prepared = digits_data(recipe, setting, 2, tmp_path)
    result, _ = train_and_evaluate(prepared, cfg, 2, ckpt_dir=tmp_path / "ckpt")
    ctx = influence_context(prepared, result, cfg, recipe.influence, 2)
    assert ctx.train_config is cfg  # the recipe where every estimator reads it
    ctx.options["loss_cleanlab"] = {"folds": 2}
    out = estimate_loss_cleanlab(ctx)
    np.testing.assert_allclose(orient("loss_cleanlab", out["loss_cleanlab"]), table["loss_cleanlab"].to_numpy())
    np.testing.assert_allclose(1 - out["cleanlab_oof_quality"], table["cleanlab"].to_numpy())


def test_detection_estimators_follow_the_registry_entry_and_check_their_options():
    """The detection estimators are Estimator entries of their own mapping (not the registry's) and read
    ctx.options as registry estimators do: defaults, overrides, a bad value named."""
    from types import SimpleNamespace

    from sampleval.detection.estimators import ESTIMATORS, CleanlabOofOptions, options_of
    from sampleval.influence.registry import ESTIMATORS as REGISTRY

    assert set(ESTIMATORS) == {"cleanlab_oof", "loss_cleanlab"} and not set(ESTIMATORS) & set(REGISTRY)
    assert all(e.needs_recipe and e.fans_out and e.load() for e in ESTIMATORS.values())
    assert options_of(SimpleNamespace(options={}), "cleanlab_oof") == CleanlabOofOptions(5)
    assert options_of(SimpleNamespace(options={"loss_cleanlab": {"folds": 3}}), "loss_cleanlab").folds == 3
    with pytest.raises(ValueError, match=r"detection options.cleanlab_oof.folds = 1 is not allowed; expected an integer >= 2"):
        options_of(SimpleNamespace(options={"cleanlab_oof": {"folds": 1}}), "cleanlab_oof")
    with pytest.raises(ValueError, match=r"unknown option 'k' \(allowed: folds\)"):
        options_of(SimpleNamespace(options={"cleanlab_oof": {"k": 1}}), "cleanlab_oof")
