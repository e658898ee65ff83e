"""Detection cells, cleanlab's folds and refinement as executor jobs: the same outputs at any
worker count (and on Ray), failures named, the detect job cache reruns only new cells."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sampleval.config import typed
from sampleval.experiments import refine as rf
from sampleval.runtime.compute import Compute, ComputeError
from sampleval.data.prepared import load_prepared
from sampleval.detection import sweep
from sampleval.data.prepare import prepare_dataset
from sampleval.training.loop import TrainConfig
from sampleval.influence.settings import InfluenceSettings
from typed_params import data_params, noise_params

ROOT = Path(__file__).resolve().parents[1]
POOL = Compute(workers=2)


def _detect_params():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["limit"] = 200
    params["train"]["epochs"] = 2
    params["influence"]["options"]["tracin"]["burn_in"] = 0
    params["detect"].update(rankings=["loss", "tracin_last_layer", "cleanlab_logreg"], combinations={"mix": ["loss", "cleanlab"]}, cleanlab_folds=2)
    return params


def _same_cells(a, b):
    assert [c for c, _, _ in a] == [c for c, _, _ in b]
    for (_, ta, ra), (_, tb, rb) in zip(a, b):
        pd.testing.assert_frame_equal(ta, tb, check_exact=True)
        assert ra == rb


def test_detect_cells_identical_at_one_and_two_workers(tmp_path):
    params = _detect_params()
    settings, seeds = ["pair94-40-fixed", "uniform-10"], [1, 0]
    params["detect"].update(rankings=["loss", "cleanlab_logreg"])
    serial = sweep.run_sweep(typed(params), settings[:1], seeds, Compute(workers=1)) + sweep.run_sweep(typed(params), settings[1:], seeds, Compute(workers=1))
    pooled = sweep.run_sweep(typed(params), settings, seeds, POOL, cache_root=tmp_path / "jobs")
    assert [c for c, _, _ in pooled] == ["pair94-40-fixed-s1", "pair94-40-fixed-s0", "uniform-10-s1", "uniform-10-s0"]  # settings outer, params order
    _same_cells(serial, pooled)
    # the cell job is run_cell itself: same table as one cell run directly
    from sampleval.detection.cell import run_cell
    from sampleval.detection.recipe import CellRecipe, NoiseSetting

    det = params["detect"]
    table, record = run_cell(CellRecipe.of(typed(params)), NoiseSetting.from_params("uniform-10", det["settings"]["uniform-10"]), 0, det["rankings"],
                             det["combinations"], 2)
    pd.testing.assert_frame_equal(serial[3][1], table, check_exact=True)
    assert list(serial[3][1].dtypes.astype(str)[:4]) == list(table.dtypes.astype(str)[:4])
    # the parquet files are the same bytes whichever way the table was computed
    from sampleval.io import write_parquet

    write_parquet(tmp_path / "a.parquet", table)
    write_parquet(tmp_path / "b.parquet", pooled[3][1])
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_detect_job_cache_runs_only_new_cells(tmp_path, capfd):
    params = _detect_params()
    params["data"]["limit"] = 120
    params["detect"].update(rankings=["loss"], combinations={})
    cache = tmp_path / "jobs"
    first = sweep.run_sweep(typed(params), ["uniform-10"], [0], Compute(workers=1), cache_root=cache)
    capfd.readouterr()
    more = sweep.run_sweep(typed(params), ["uniform-10", "pair94-40-fixed"], [0], Compute(workers=1), cache_root=cache)
    assert "1 of 2 jobs read from the job cache" in capfd.readouterr().err
    _same_cells(first, more[:1])
    assert len(list(cache.glob("*.json"))) == 2
    # a recipe change is another key: nothing read back
    params["train"]["lr"] = 0.002
    sweep.run_sweep(typed(params), ["uniform-10"], [0], Compute(workers=1), cache_root=cache)
    assert "read from the job cache" not in capfd.readouterr().err


def test_failing_cell_is_named_with_setting_and_seed():
    params = typed(_detect_params())
    params = replace(params, detect=replace(params.detect, cleanlab_folds=500))  # more folds than samples per class (and than params allow)
    with pytest.raises(ComputeError, match=r"^detect: job uniform-10-s3 \(setting uniform-10, seed 3\) failed: ValueError: .*cleanlab_folds") as err:
        sweep.run_sweep(params, ["uniform-10"], [3], Compute(workers=1))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="not in 'detect.settings'"):
        sweep.run_sweep(params, ["nope"], [0])


def test_cleanlab_cnn_folds_pickle_to_workers():
    """The fold jobs' fit_predict travels to pool workers and Ray tasks: a pickled copy gives
    the same probabilities (the pool itself is exercised by the cleanlab logreg folds below)."""
    import pickle

    from sampleval.detection.oof import cnn_fit_predict
    from sampleval.training.out_of_fold import out_of_fold_probs

    rng = np.random.default_rng(0)
    x = rng.random((60, 1, 8, 8)).astype(np.float32)
    y = np.repeat(np.arange(3), 20)
    fp = cnn_fit_predict(x, y, x[:12], y[:12], 3, TrainConfig(epochs=1, batch_size=32, device="cpu"), 4)
    p1, f1 = out_of_fold_probs(y, 3, fp, folds=2, seed=1)
    p2, f2 = out_of_fold_probs(y, 3, pickle.loads(pickle.dumps(fp)), folds=2, seed=1)
    assert np.array_equal(f1, f2) and np.array_equal(p1, p2) and not np.isnan(p1).any()


@pytest.mark.parametrize("task", ["multiclass", "singleton", "multilabel"])
def test_cleanlab_logreg_folds_equal_cross_val_predict(task):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sampleval.influence.heuristics import cross_validated_probs

    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 6))
    if task == "multiclass":
        y = np.repeat([0, 2, 3], 40)  # class 1 absent: columns of the classes present
        clf, cv = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)), StratifiedKFold(4, shuffle=True, random_state=5)
        want = np.zeros((120, 4))
        want[:, [0, 2, 3]] = cross_val_predict(clf, x, y, cv=cv, method="predict_proba")
    elif task == "singleton":  # one sample of class 1: the one fold rule (sampleval.training.out_of_fold) refuses, naming the key
        y = np.repeat([0, 2, 3, 1], [40, 40, 39, 1])
        with pytest.raises(ValueError, match=r"only 1 training samples, fewer than influence\.options\.cleanlab\.folds = 4"):
            cross_validated_probs(x, y, "multiclass", 4, folds=4, seed=5)
        return
    else:
        y = (x[:, :3] > 0).astype(int)
        clf, cv = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression(max_iter=2000))), KFold(4, shuffle=True, random_state=5)
        want = cross_val_predict(clf, x, y, cv=cv, method="predict_proba")
    got = cross_validated_probs(x, y, task, 4 if task == "multiclass" else 3, folds=4, seed=5)
    assert np.array_equal(got, want)  # bitwise: the folds are cross_val_predict's
    if task == "multiclass":  # and on a pool of 2 workers
        assert np.array_equal(cross_validated_probs(x, y, task, 4, folds=4, seed=5, compute=POOL), want)


# --- refine -------------------------------------------------------------------------------

DATA = data_params(source="digits", root=None, val_fraction=0.3, test_fraction=0.3, limit=160, image_size=8,
                   on_bad_image="fail", uncertainty="ones", frontal_only=True)
NOISE = noise_params(kind="pairwise", rate=0.4, pairs=[[9, 4]], splits=["train"])
INFLUENCE = InfluenceSettings(batch_size=256, damping=0.1, cg_iterations=10, tracin_method="central", options={"tracin": {"burn_in": 0}})


@pytest.fixture(scope="module")
def refine_setup(tmp_path_factory):
    out = tmp_path_factory.mktemp("prep")
    prepare_dataset(DATA, NOISE, 0, out)
    cfg = TrainConfig(epochs=2, batch_size=32, lr=3e-3, device="cpu")
    return rf.RefineSetup(prepared=load_prepared(out), cfg=cfg, ranking="tracin", dcs_score="tracin", rounds=1, fraction=0.1, influence=INFLUENCE)


def test_refine_identical_at_one_and_two_workers(refine_setup):
    serial = rf.run(refine_setup, [1, 0], Compute(workers=1))
    pooled = rf.run(refine_setup, [1, 0], POOL)
    pd.testing.assert_frame_equal(serial, pooled, check_exact=True)
    assert serial["seed"].tolist() == [1] * 4 + [0] * 4
    assert serial["arm"].tolist()[:4] == ["refined", "random", "refined", "random"] and serial["round"].tolist()[:4] == [0, 0, 1, 1]
    # the same rows as one seed run in this process
    pd.testing.assert_frame_equal(serial[serial["seed"] == 0].reset_index(drop=True), rf.run_refinement(refine_setup, 0), check_exact=True)
    a, b = rf.summarize(serial, n_bootstrap=100), rf.summarize(pooled, n_bootstrap=100)
    assert repr(a) == repr(b)  # NaN-safe dict equality


def test_ray_gives_the_same_detect_and_refine_outputs(refine_setup, shared_ray):
    ray_compute = Compute(backend="ray", workers=2)  # joins the shared local instance (tests/conftest.py) for both runs
    params = _detect_params()
    params["data"]["limit"] = 120
    params["detect"].update(rankings=["loss"], combinations={})
    _same_cells(sweep.run_sweep(typed(params), ["uniform-10"], [0, 1], Compute(workers=1)), sweep.run_sweep(typed(params), ["uniform-10"], [0, 1], ray_compute))
    pd.testing.assert_frame_equal(rf.run(refine_setup, [0], Compute(workers=1)), rf.run(refine_setup, [0], ray_compute), check_exact=True)
