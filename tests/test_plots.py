import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sampleval import plots
from sampleval.cells import CellKey


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
    df = plots.subsets_table(CELLS, "accuracy")
    row = df[df["ranking"] == "tracin"].iloc[0]
    assert (row["mean"], row["min"], row["max"], row["n_seeds"]) == (pytest.approx(0.9), 0.8, 1.0, 3)
    assert row["std"] == pytest.approx(np.std([0.9, 0.8, 1.0], ddof=1))
    assert set(df["ranking"]) == {"tracin", "random"}


def test_composition_table_means_random_draws_over_seeds():
    df = plots.composition_table(CELLS)
    ctrl = df[(df["ranking"] == "random") & (df["class"] == "0")].iloc[0]
    assert ctrl["chosen"] == pytest.approx(5.0) and ctrl["chosen_share"] == pytest.approx(0.5) and not ctrl["stripped"]
    ranked = df[(df["ranking"] == "tracin") & (df["class"] == "0")].iloc[0]
    assert ranked["chosen_share"] == 1.0 and ranked["rate"] == pytest.approx(0.2) and ranked["strip_ratio"] == pytest.approx(2.0)


def test_figures_are_written_as_pngs(tmp_path):
    table = plots.subsets_table(CELLS, "accuracy")
    plots.subsets_plot(table, "accuracy", 0.95, tmp_path / "subsets.png")
    plots.composition_heatmap(plots.composition_table(CELLS), tmp_path / "composition.png")
    for name in ("subsets.png", "composition.png"):
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 100


def test_sorted_scores_and_detection_table():
    table = pd.DataFrame({"tracin": [0.3, -0.2, 0.1, -0.5], "flipped": [False, True, False, True]})
    ordered = plots.sorted_scores(table, "tracin")
    assert list(ordered["score"]) == [-0.5, -0.2, 0.1, 0.3] and list(ordered["flipped"]) == [True, True, False, False]
    det = plots.detection_table(table, ["tracin"])
    found = det.set_index("inspected")["found"]
    assert found.loc[0.5] == pytest.approx(1.0) and found.loc[0.0] == 0.0  # the two most harmful are the flipped ones
