import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sampleval.reporting import figures
from sampleval.experiments.subset_cells import CellKey


def _cell(key, accs, chosen):
    return {
        "ranking": key.ranking, "variant": key.variant, "strategy": key.strategy, "fraction": key.fraction,
        "n_train": 100, "train_class_composition": {"0": 50, "1": 50},
        "seeds": {str(s): {"accuracy": a, "n_chosen": sum(c.values()), "chosen_class_composition": c}
                  for s, (a, c) in enumerate(zip(accs, chosen))},
    }


CELLS = {
    CellKey("tracin", "global", "remove-harmful", 0.1): _cell(CellKey("tracin", "global", "remove-harmful", 0.1), [0.9, 0.8, 1.0], [{"0": 10, "1": 0}] * 3),
    CellKey("random", "global", "remove-random", 0.1): _cell(CellKey("random", "global", "remove-random", 0.1), [0.7, 0.7, 0.7],
                                                             [{"0": 4, "1": 6}, {"0": 6, "1": 4}, {"0": 5, "1": 5}]),
}


def test_subsets_table_summarises_seeds():
    df = figures.subsets_table(CELLS, "accuracy")
    row = df[df["ranking"] == "tracin"].iloc[0]
    assert (row["mean"], row["min"], row["max"], row["n_seeds"]) == (pytest.approx(0.9), 0.8, 1.0, 3)
    assert row["std"] == pytest.approx(np.std([0.9, 0.8, 1.0], ddof=1))
    assert set(df["ranking"]) == {"tracin", "random"}


def test_composition_table_means_random_draws_over_seeds():
    df = figures.composition_table(CELLS)
    ctrl = df[(df["ranking"] == "random") & (df["class"] == "0")].iloc[0]
    assert ctrl["chosen"] == pytest.approx(5.0) and ctrl["chosen_share"] == pytest.approx(0.5) and not ctrl["stripped"]
    ranked = df[(df["ranking"] == "tracin") & (df["class"] == "0")].iloc[0]
    assert ranked["chosen_share"] == 1.0 and ranked["rate"] == pytest.approx(0.2) and ranked["strip_ratio"] == pytest.approx(2.0)


def test_figures_are_written_as_pngs(tmp_path):
    table = figures.subsets_table(CELLS, "accuracy")
    figures.subsets_plot(table, "accuracy", 0.95, tmp_path / "subsets.png")
    figures.composition_heatmap(figures.composition_table(CELLS), tmp_path / "composition.png")
    for name in ("subsets.png", "composition.png"):
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 100


def test_sorted_scores_and_detection_table():
    table = pd.DataFrame({"tracin": [0.3, -0.2, 0.1, -0.5], "flipped": [False, True, False, True]})
    ordered = figures.sorted_scores(table, "tracin")
    assert list(ordered["score"]) == [-0.5, -0.2, 0.1, 0.3] and list(ordered["flipped"]) == [True, True, False, False]
    det = figures.detection_table(table, ["tracin"])
    found = det.set_index("inspected")["found"]
    assert found.loc[0.5] == pytest.approx(1.0) and found.loc[0.0] == 0.0  # the two most harmful are the flipped ones


FIDELITY = {
    "network": {
        "tracin": {"lds": 0.27, "lds_lo": -0.02, "lds_hi": 0.53, "loo_spearman": 0.21, "loo_spearman_lo": -0.77, "loo_spearman_hi": 1.0},
        "if_cg": {"lds": 0.46, "lds_lo": 0.22, "lds_hi": 0.66, "loo_spearman": None, "loo_spearman_lo": None, "loo_spearman_hi": None},
    },
    "tracin_checkpoints": {"selected_epoch": 6, "all": {"lds": 0.26, "lds_lo": -0.04, "lds_hi": 0.52, "loo_spearman": 0.43,
                                                        "loo_spearman_lo": -0.52, "loo_spearman_hi": 0.93}},
}


def test_fidelity_table_and_figure_from_the_metrics(tmp_path):
    """The figure's data is fidelity.json's LDS and LOO Spearman with their CIs, one row per
    estimator and TracIn variant (the non-dict selected_epoch is no row); missing values are NaN."""
    table = figures.fidelity_table(FIDELITY)
    assert list(table["estimator"]) == ["tracin", "if_cg", "tracin[all]"]
    row = table.set_index("estimator").loc["if_cg"]
    assert (row["lds"], row["lds_lo"], row["lds_hi"]) == (0.46, 0.22, 0.66) and np.isnan(row["loo_spearman"])
    figures.fidelity_plot(table, tmp_path / "fidelity.png")
    with Image.open(tmp_path / "fidelity.png") as im:
        assert im.format == "PNG" and im.size[0] > 600


def test_long_tables_for_dvc_plots():
    wide = pd.DataFrame({"inspected": [0.0, 0.5, 1.0], "tracin": [0.0, 0.9, 1.0], "random": [0.0, 0.5, 1.0]})
    long = figures.detection_curves_long({"pair": wide, "uniform": wide}, max_inspected=1.0)
    assert list(long.columns) == ["panel", "group", "inspected", "found"] and len(long) == 12
    assert len(figures.detection_curves_long({"pair": wide}, max_inspected=0.5)) == 4
    assert long[(long["panel"] == "uniform") & (long["group"] == "tracin")]["found"].tolist() == [0.0, 0.9, 1.0]
    rounds = pd.DataFrame({"seed": [0, 1, 0, 1], "arm": ["refined", "refined", "random", "random"], "round": [1, 1, 1, 1],
                           "test_accuracy": [0.9, 0.8, 0.7, 0.7]})
    means = figures.refine_rounds(rounds).set_index("group")
    assert means.loc["refined", "test_accuracy"] == pytest.approx(0.85) and means.loc["random", "test_accuracy"] == pytest.approx(0.7)
    cells = figures.subsets_cells(figures.subsets_table(CELLS, "accuracy"))
    assert set(cells["cell"]) == {"tracin/global/remove-harmful@0.1", "random/global/remove-random@0.1"}


def test_detection_rankings_have_distinct_styles():
    from sampleval.detection.summary_figures import _style

    names = [f"r{i}" for i in range(12)] + ["cleanlab", "random", "rec"]
    styles = [_style(r, "rec", i) for i, r in enumerate(names)]
    looks = {(tuple(np.round(s["color"], 3)) if not isinstance(s["color"], str) else s["color"], str(s["ls"]), s.get("marker")) for s in styles}
    assert len(looks) == len(names)
    assert _style("rec", "rec")["color"] == "crimson" and all(s["color"] != "crimson" for s in styles[:12])
