"""End to end on your own data: the real `dvc repro` on a table, an image folder and two
manifests (multi-class; multi-label with groups).

Each run reproduces the stages that read the prepared data (and stats), not the whole DAG:
detect, detect-summary and score-shapes run on the digits whatever data.source is, and the
full DAG on a non-digits source (detect, refine, score-shapes and report included) is the
X-ray fixture run in tests/test_e2e.py. The runs start with the session, in the background
(tests/conftest.py: background_runs), one after another (compute.workers 1: each is a chain of
single-threaded stage processes), and each test waits for its own."""
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from sources_fixtures import make_imagefolder, make_manifest  # noqa: E402
from test_e2e import _dvc, _ran, make_repo  # noqa: E402

pytestmark = pytest.mark.e2e

# the stages that read data/prepared, and stats (subsets' results)
TARGETS = ("scores", "fidelity", "stats", "explain", "shapes-index")
TARGET_STAGES = {"check-params", "prepare", "train", "influence", "scores", "subsets", "fidelity", "stats", "explain", "shapes-index"}


def _set(repo: Path, edit) -> dict:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    edit(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def _tiny(p: dict) -> None:
    p["data"].update(val_fraction=0.2, test_fraction=0.2)
    p["train"]["epochs"] = 3
    p["influence"]["methods"] = ["tracin", "loss"]
    p["subsets"]["scores"] = ["tracin"]
    p["fidelity"].update(n_points=4, n_subsets=4, seeds=[0], tracin_checkpoints=[])
    p["checks"]["allow_chance_level"] = True  # tiny generated images: a 3-epoch baseline may sit at chance
    p["compute"]["workers"] = 1  # jobs in the stage's process: the runs share the cores (the pool: tests/test_compute.py, test_e2e.py)


def _table(repo: Path) -> Path:
    def table(p):
        _tiny(p)
        p["data"].update(source="table", file="sklearn:wine")
        p["model"]["name"] = "logistic"
        p["noise"].update(kind="pairwise", rate=0.3, pairs=[[1, 2]])
        p["influence"]["methods"] = ["tracin", "if_cg", "loss"]
        p["subsets"]["scores"] = ["tracin", "if_cg"]
        p["train"]["lr"] = 0.05

    make_repo(repo, table)
    assert _ran(_dvc(repo, "repro", *TARGETS)) == TARGET_STAGES
    return repo


def _imagefolder(repo: Path) -> Path:
    def imagefolder(p):
        _tiny(p)
        p["data"].update(source="imagefolder", root="data/raw/folder", image_size=None)
        p["noise"].update(kind="pairwise", rate=0.3, pairs=[[0, 1]])
        p["train"]["lr"] = 0.01

    make_repo(repo, imagefolder)
    make_imagefolder(repo / "data/raw/folder", n_per_class=20, size=16, rgb=True, fixed=True)
    assert _ran(_dvc(repo, "repro", *TARGETS)) == TARGET_STAGES
    return repo


def _manifests(repo: Path) -> tuple[Path, dict]:
    """A multi-class manifest through train, then (same repo) a multi-label one with groups
    through subsets and stats. Past train the prepared data of a multi-class manifest is what
    the image folder's and the digits' runs test; multi-label data past train is also the X-ray run's."""
    make_repo(repo, lambda p: (_tiny(p), p["data"].update(source="manifest", file="data/raw/m/manifest.csv", image_size=None),
                               p["noise"].update(kind="uniform", rate=0.1)))
    make_manifest(repo / "data/raw/m", n=60)
    assert _ran(_dvc(repo, "repro", "train")) == {"check-params", "prepare", "train"}
    multiclass = json.loads((repo / "data/prepared/manifest.json").read_text())

    make_manifest(repo / "data/raw/ml", n=90, multilabel=True, groups=True)

    def multilabel(p):
        p["data"].update(file="data/raw/ml/manifest.csv", label_separator="|", group_column="patient")
        p["noise"]["kind"] = "none"
        p["subsets"]["variants"] = ["global"]
        p["stats"]["metric"] = "macro_auroc"

    _set(repo, multilabel)
    assert _ran(_dvc(repo, "repro", "scores", "stats")) == {"check-params", "prepare", "train", "influence", "scores", "subsets", "stats"}
    return repo, multiclass


# started with the session (tests/conftest.py), one after another, alongside the other tests
BACKGROUND_RUNS = {"test_table_end_to_end": _table, "test_imagefolder_rgb_end_to_end": _imagefolder, "test_manifests_end_to_end": _manifests}


def test_table_end_to_end(background_runs):
    repo = background_runs["test_table_end_to_end"].result()
    manifest = json.loads((repo / "data/prepared/manifest.json").read_text())
    assert manifest["source"] == "table" and manifest["image_shape"] == [13, 1, 1] and manifest["n_flipped"]["train"] > 0
    fidelity = json.loads((repo / "metrics/fidelity.json").read_text())
    assert fidelity["convex_if"]["loo_pearson"] > 0.95  # exact influence on the convex control
    scores = pd.read_parquet(repo / "data/influence/scores.parquet")
    assert {"tracin", "if_cg", "loss"} <= set(scores.columns) and len(scores) == manifest["n_samples"]["train"]
    assert len(json.loads((repo / "metrics/stats.json").read_text())["comparisons"]) == 4
    assert (repo / "plots/explanations.png").exists() and (repo / "metrics/shapes.json").exists()


def test_imagefolder_rgb_end_to_end(background_runs):
    repo = background_runs["test_imagefolder_rgb_end_to_end"].result()
    manifest = json.loads((repo / "data/prepared/manifest.json").read_text())
    assert manifest["image_shape"] == [3, 16, 16] and manifest["class_index"] == {"cat": 0, "dog": 1, "fox": 2}
    assert manifest["n_samples"] == {"train": 36, "val": 12, "test": 12}
    assert (repo / "plots/explanations.png").exists()
    scores = pd.read_parquet(repo / "data/influence/scores.parquet")
    assert {"tracin", "loss"} <= set(scores.columns) and len(scores) == 36
    assert len(json.loads((repo / "metrics/stats.json").read_text())["comparisons"]) == 2  # tracin x (remove, select)
    assert json.loads((repo / "metrics/fidelity.json").read_text())


def test_manifests_end_to_end(background_runs):
    """A multi-class manifest, then (same repo) a multi-label one with groups."""
    repo, manifest = background_runs["test_manifests_end_to_end"].result()
    assert manifest["source"] == "manifest" and manifest["task"] == "multiclass" and manifest["image_shape"] == [1, 16, 16]
    prepared = pd.read_parquet(repo / "data/prepared/samples.parquet")
    by_split = prepared.groupby("split")["patient_id"].apply(set)
    assert not (by_split["train"] & by_split["test"]) and not (by_split["train"] & by_split["val"]) and not (by_split["val"] & by_split["test"])
    assert all(len(v) == 3 for v in prepared["label"])
    scores = pd.read_parquet(repo / "data/influence/scores.parquet")
    assert all(len(v) == 3 for v in scores["label"]) and len(scores) == (prepared["split"] == "train").sum()
    stats = json.loads((repo / "metrics/stats.json").read_text())
    assert stats["metric"] == "test.macro_auroc" and len(stats["comparisons"]) == 2
