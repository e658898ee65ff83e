"""run_subset_cell on tiny data: the record schema, shared controls, the stratified variant."""
import numpy as np
import pandas as pd
import pytest

from sampleval.data.prepared import Prepared
from sampleval.training.retrain import class_composition
from sampleval.experiments.subset_runs import run_subset_cell
from sampleval.training.loop import TrainConfig

CFG = TrainConfig(epochs=1, batch_size=32, lr=0.01)


def _prepared(n=90, task="multiclass"):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    images = (rng.random((n, 1, 8, 8)) * 60 + y[:, None, None, None] * 60).astype(np.uint8)
    split = np.array(["train"] * 60 + ["val"] * 15 + ["test"] * 15)
    flipped = np.zeros(n, bool)
    flipped[:5] = True
    table = pd.DataFrame({"row": np.arange(n), "sample_id": [f"d{i:03d}" for i in range(n)], "split": split,
                          "label": y, "clean_label": y, "flipped": flipped})
    return Prepared(images=images, table=table, task=task, classes=["0", "1", "2"])


def _scores(prepared, column):
    tr = prepared.split("train")
    return pd.DataFrame({"sample_id": tr.ids, column: np.linspace(-1, 1, len(tr.ids))})


def test_record_schema_and_ranked_subset_fixed_across_seeds():
    prepared = _prepared()
    rec = run_subset_cell(prepared, CFG, "remove-harmful", 0.2, [0, 1], "global", _scores(prepared, "tracin"), "tracin")
    assert (rec["ranking"], rec["variant"], rec["strategy"], rec["fraction"], rec["n_train"]) == ("tracin", "global", "remove-harmful", 0.2, 60)
    tr = prepared.split("train")
    assert rec["train_class_composition"] == class_composition(tr, np.ones(60, bool), prepared.classes, "multiclass")
    seeds = rec["seeds"]
    assert set(seeds) == {"0", "1"} and seeds["0"]["ids_sha256"] == seeds["1"]["ids_sha256"]
    assert seeds["0"]["n_chosen"] == 12 and seeds["0"]["n_trained"] == 48
    assert sum(seeds["0"]["chosen_class_composition"].values()) == 12
    # the 12 lowest tracin scores are the first 12 training ids, which hold the 5 flipped labels
    assert seeds["0"]["flipped_in_chosen"] == 5 == sum(seeds["0"]["chosen_flipped_class_composition"].values())
    assert 0 <= rec["mean"]["accuracy"] <= 1


def test_control_ignores_rankings_and_draws_per_seed():
    prepared = _prepared()
    a = run_subset_cell(prepared, CFG, "select-random", 0.5, [0, 1], "stratified")
    b = run_subset_cell(prepared, CFG, "select-random", 0.5, [0, 1], "stratified", _scores(prepared, "loss"), "loss")
    assert a == b and a["ranking"] == "random"  # one control serves every ranking
    assert a["seeds"]["0"]["ids_sha256"] != a["seeds"]["1"]["ids_sha256"]
    full = a["train_class_composition"]
    for seed in a["seeds"].values():  # stratified: every class keeps half (rounded)
        assert all(abs(seed["chosen_class_composition"][c] - full[c] / 2) <= 0.5 for c in full)


def test_self_influence_is_oriented_as_suspicion():
    prepared = _prepared()
    scores = _scores(prepared, "self_influence")  # increasing: the last ids are the most unusual
    rec = run_subset_cell(prepared, CFG, "remove-harmful", 0.2, [0], "global", scores, "self_influence")
    assert rec["seeds"]["0"]["flipped_in_chosen"] == 0  # removed the last 12 ids
    scores["self_influence"] = -scores["self_influence"]  # now the first ids (the flipped ones) are
    rec = run_subset_cell(prepared, CFG, "remove-harmful", 0.2, [0], "global", scores, "self_influence")
    assert rec["seeds"]["0"]["flipped_in_chosen"] == 5


def test_bad_inputs_are_one_line_errors():
    prepared = _prepared()
    with pytest.raises(ValueError, match="needs a ranking's scores"):
        run_subset_cell(prepared, CFG, "remove-harmful", 0.2, [0], "global")
    with pytest.raises(ValueError, match="unknown subset variant"):
        run_subset_cell(prepared, CFG, "remove-random", 0.2, [0], "per-class")
    bad = _scores(prepared, "tracin").iloc[::-1]
    with pytest.raises(ValueError, match="do not match the prepared training set"):
        run_subset_cell(prepared, CFG, "remove-harmful", 0.2, [0], "global", bad, "tracin")


def test_subset_cells_identical_at_any_worker_count_and_on_ray(request):
    """The same cells from 1 worker, 2 local workers and a 2-CPU Ray instance: identical
    records (floats compared exactly), in the same order."""
    from sampleval.experiments.subset_cells import CellKey
    from sampleval.runtime.compute import Compute
    from sampleval.experiments.subset_runs import run_subset_cells

    prepared = _prepared()
    cells = [CellKey("tracin", "global", "remove-harmful", 0.2), CellKey("random", "global", "remove-random", 0.2)]
    scores = {"tracin": _scores(prepared, "tracin")}
    serial = run_subset_cells(prepared, CFG, cells, [0, 1, 2], scores, Compute(workers=1))
    pooled = run_subset_cells(prepared, CFG, cells, [0, 1, 2], scores, Compute(workers=2))
    assert list(pooled) == cells and pooled == serial
    request.getfixturevalue("shared_ray")  # skips here without Ray
    assert run_subset_cells(prepared, CFG, cells, [0, 1, 2], scores, Compute(backend="ray", workers=2)) == serial


def test_identical_subsets_train_once(tmp_path):
    """remove@0.6 and select@0.4 of one ranking keep the same ids: one retraining per seed,
    and a second run reads every retraining from the job cache."""
    from sampleval.experiments.subset_cells import CellKey
    from sampleval.runtime.compute import Compute, JobCache
    from sampleval.experiments.subset_runs import run_subset_cells

    prepared = _prepared()
    cells = [CellKey("loss", "global", "remove-harmful", 0.6), CellKey("loss", "global", "select-helpful", 0.4)]
    cache = JobCache(tmp_path, "x")
    recs = run_subset_cells(prepared, CFG, cells, [0, 1], {"loss": _scores(prepared, "loss")}, Compute(workers=1), cache)
    assert len(list(tmp_path.glob("*.json"))) == 2  # 2 seeds, not 4
    a, b = (recs[c]["seeds"] for c in cells)
    assert all(a[s]["ids_sha256"] == b[s]["ids_sha256"] and a[s]["accuracy"] == b[s]["accuracy"] for s in a)
    again = run_subset_cells(prepared, CFG, cells, [0, 1], {"loss": _scores(prepared, "loss")}, Compute(workers=1), cache)
    assert again == recs


def test_recipe_fingerprint_reads_multilabel_tables():
    """Multi-label tables hold an array per row: the fingerprint hashes them, and tells them apart."""
    from sampleval.runtime.fingerprints import recipe_fingerprint

    a = _prepared()
    a.table["label"] = [np.array([i % 2, 1 - i % 2]) for i in range(len(a.table))]
    b = _prepared()
    b.table["label"] = [np.array([1 - i % 2, i % 2]) for i in range(len(b.table))]
    assert recipe_fingerprint(a, CFG) == recipe_fingerprint(a, CFG) != recipe_fingerprint(b, CFG)
