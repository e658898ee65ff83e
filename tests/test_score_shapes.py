"""Score shapes on synthetic sweep cells with detect's schema."""
import math

import numpy as np
import pandas as pd
import pytest

from sampleval.detection import score_shapes as sh


def _cell(seed, n=120, n_flip=12, pattern="pairwise", ends=True):
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 10, n)
    clean[:n_flip] = 9
    label = clean.copy()
    if pattern == "pairwise":
        label[:n_flip] = 4
    else:
        label[:n_flip] = (clean[:n_flip] + rng.integers(1, 10, n_flip)) % 10
    flipped = label != clean
    tracin = rng.normal(0, 1, n)
    if ends:  # flips at both ends of the sorted TracIn scores (an S shape, as the paper describes)
        tracin[:n_flip] = np.where(np.arange(n_flip) % 2 == 0, 10.0, -10.0) + rng.normal(0, 0.1, n_flip)
    return pd.DataFrame({"sample_id": [f"digit-{i:04d}" for i in range(n)], "label": label, "clean_label": clean, "flipped": flipped,
                         "tracin": -tracin, "loss": rng.random(n)})


def test_position_from_centre_by_hand():
    assert sh.position_from_centre(np.array([5.0, 4, 3, 2, 1])).tolist() == [100, 50, 0, 50, 100]
    assert sh.position_from_centre(np.array([1.0, 2, 3, 4, 5])).tolist() == [100, 50, 0, 50, 100]
    assert sh.descending_ranks(np.array([1.0, 3.0, 3.0])).tolist() == [2, 0, 1]  # ties by position


def test_sorted_curve_descending():
    c = sh.sorted_curve(np.array([1.0, 3.0, 2.0]), np.array([True, False, False]))
    assert c["score"].tolist() == [3.0, 2.0, 1.0] and c["flipped"].tolist() == [False, False, True]
    assert c["rank_share"].tolist() == [0.0, 0.5, 1.0]


def test_knn_isolation_against_brute_force():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 1, 4, 4)).astype(np.uint8)
    got = sh.knn_isolation(x, 3)
    flat = x.reshape(30, -1) / 127.5 - 1
    d = np.sqrt(((flat[:, None] - flat[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    assert np.allclose(got, np.sort(d, axis=1)[:, :3].mean(1))
    with pytest.raises(ValueError, match="shapes.knn"):
        sh.knn_isolation(x, 30)


def test_noise_pattern():
    assert sh.noise_pattern(np.array([4, 4, 1]), np.array([9, 9, 1]), np.array([True, True, False])) == "pairwise 9->4"
    assert sh.noise_pattern(np.array([4, 3]), np.array([9, 8]), np.array([True, True])) == "asymmetric"
    assert sh.noise_pattern(np.array([4, 3]), np.array([9, 9]), np.array([True, True])) == "uniform"
    assert sh.noise_pattern(np.array([1]), np.array([1]), np.array([False])) == "none"


def test_analyse_synthetic_cells(tmp_path):
    cells = {"pairwise-0.2-s0": _cell(0), "pairwise-0.2-s1": _cell(1), "uniform-0.1-s0": _cell(2, pattern="uniform", ends=False)}
    for name, t in cells.items():  # the sweep's files round-trip through parquet
        t.to_parquet(tmp_path / f"{name}.parquet", index=False)
    cells = {p.stem: pd.read_parquet(p) for p in sorted(tmp_path.glob("*.parquet"))}
    rng = np.random.default_rng(5)
    images = {f"digit-{i:04d}": rng.integers(100, 110, (1, 4, 4)).astype(np.uint8) for i in range(120)}
    for i in range(12):  # flipped samples far from everything else
        images[f"digit-{i:04d}"] = rng.integers(0, 256, (1, 4, 4)).astype(np.uint8)
    records = {"pairwise-0.2-s0": {"test": {"accuracy": 0.9, "loss": 0.3}},
               "uniform-0.1-s0": {"baseline": {"test_accuracy": 0.8, "val_loss": 0.5}}}  # detect's record: val loss only
    metrics, curves, bands, perf = sh.analyse(cells, "tracin", images, 3, records)
    m = metrics["cells"]["pairwise-0.2-s0"]
    assert m["noise"] == "pairwise 9->4" and m["n_flipped"] == 12 and m["flip_ratio"] == pytest.approx(0.1)
    assert m["flipped_position_from_centre_pct"] > 95 and 40 < m["clean_position_from_centre_pct"] < 60
    assert m["flipped_share_in_outer_10pct"] == 1.0
    assert m["isolation_flipped_mean"] > m["isolation_clean_mean"] and m["spearman_isolation_position"] > 0
    assert m["test_accuracy"] == 0.9 and m["loss"] == 0.3 and m["loss_source"] == "test_loss"
    u = metrics["cells"]["uniform-0.1-s0"]
    assert u["test_accuracy"] == 0.8 and u["loss"] == 0.5 and u["loss_source"] == "val_loss"
    assert metrics["missing_performance"] == ["pairwise-0.2-s1"]
    assert metrics["cells"]["uniform-0.1-s0"]["noise"] == "uniform"
    assert metrics["cells"]["uniform-0.1-s0"]["flipped_position_from_centre_pct"] < 80
    # the curve is TracIn itself (minus the suspicion column), descending
    c = curves[curves["cell"] == "pairwise-0.2-s0"]
    assert c["score"].is_monotonic_decreasing and c["score"].iloc[0] == pytest.approx(-cells["pairwise-0.2-s0"]["tracin"].min())
    assert set(bands["cell"]) == set(cells) and (bands.groupby("cell")["n"].sum() == 120).all()
    assert s_index_ok(m["s_shapedness"])
    sh.shapes_plot(curves, metrics, tmp_path / "s.png")
    sh.threshold_plot(perf, bands, tmp_path / "t.png")
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "t.png").stat().st_size > 1000


def s_index_ok(value):
    return value is None or math.isfinite(value)


def test_bad_cells_fail_in_one_line():
    t = _cell(0)
    with pytest.raises(ValueError, match="missing column"):
        sh.analyse({"c": t.drop(columns=["flipped"])}, "tracin", None, 3)
    with pytest.raises(ValueError, match="shapes.ranking"):
        sh.analyse({"c": t}, "if_diag", None, 3)
    with pytest.raises(ValueError, match="not in the prepared"):
        sh.analyse({"c": t}, "tracin", {}, 3)


def test_sweep_images_hold_samples_a_remove_correction_dropped(tmp_path, monkeypatch):
    """The isolation analysis reads the cells' own digits: a sample that a ``remove`` row of
    data/corrections.csv dropped from data/prepared is still in every sweep cell, so its image
    must be there too (it was read from data/prepared and failed with a KeyError)."""
    from sampleval.data.prepare import prepare_dataset
    from sampleval.data.prepared import load_prepared
    from sampleval.detection.cell import digits_data
    from sampleval.detection.recipe import CellRecipe, NoiseSetting
    from stages.score_shapes import sweep_training_images
    from typed_params import committed

    params = committed()
    monkeypatch.chdir(tmp_path)
    prepare_dataset(params.data, params.noise, params.seed, tmp_path / "full")
    removed = load_prepared(tmp_path / "full").split("train").ids[0]
    (tmp_path / "corrections.csv").write_text(f"sample_id,action,new_label\n{removed},remove,\n")
    prepare_dataset(params.data, params.noise, params.seed, tmp_path / "data" / "prepared", tmp_path / "corrections.csv")
    assert removed not in set(load_prepared(tmp_path / "data" / "prepared").split("train").ids)

    images = sweep_training_images(params)
    cell = digits_data(CellRecipe.of(params), NoiseSetting("u", "uniform", 0.1), 0, tmp_path / "cell").split("train")
    assert removed in images
    assert set(images) == set(cell.ids)
    np.testing.assert_array_equal(images[removed], np.asarray(cell.x)[list(cell.ids).index(removed)])
