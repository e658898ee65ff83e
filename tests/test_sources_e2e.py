"""End to end on your own data: the real `dvc repro` on a table, an image folder and two
manifests (multi-class; multi-label with groups). Each full run is about 20 stage processes
(the digits detection sweep included): minutes on a loaded 2-core machine, so run them with -k."""
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from sources_fixtures import make_imagefolder, make_manifest  # noqa: E402
from test_e2e import _dvc, make_repo  # noqa: E402

pytestmark = pytest.mark.e2e


def _set(repo: Path, edit) -> dict:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    edit(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def _tiny(p: dict) -> None:
    # data.limit 300 is above every fixture's size: it only keeps the digits sweep (detect) small
    p["data"].update(limit=300, val_fraction=0.2, test_fraction=0.2)
    p["train"]["epochs"] = 3
    p["influence"]["methods"] = ["tracin", "loss"]
    p["subsets"]["scores"] = ["tracin"]
    p["fidelity"].update(n_points=4, n_subsets=4, seeds=[0], tracin_checkpoints=[])
    p["refine"]["seeds"] = [0, 1, 2, 3, 4, 5]
    p["detect"]["seeds"] = [0, 1, 2]
    p["checks"]["allow_chance_level"] = True  # tiny generated images: a 3-epoch baseline may sit at chance


def test_table_end_to_end(tmp_path):
    def table(p):
        _tiny(p)
        p["data"].update(source="table", file="sklearn:wine")
        p["model"]["name"] = "logistic"
        p["noise"].update(kind="pairwise", rate=0.3, pairs=[[1, 2]])
        p["influence"]["methods"] = ["tracin", "if_cg", "loss"]
        p["subsets"]["scores"] = ["tracin", "if_cg"]
        p["train"]["lr"] = 0.05

    repo = make_repo(tmp_path, table)
    _dvc(repo, "repro")
    manifest = json.loads((repo / "data/prepared/manifest.json").read_text())
    assert manifest["source"] == "table" and manifest["image_shape"] == [13, 1, 1] and manifest["n_flipped"]["train"] > 0
    fidelity = json.loads((repo / "metrics/fidelity.json").read_text())
    assert fidelity["convex_if"]["loo_pearson"] > 0.95  # exact influence on the convex control
    scores = pd.read_parquet(repo / "data/influence/scores.parquet")
    assert {"tracin", "if_cg", "loss"} <= set(scores.columns) and len(scores) == manifest["n_samples"]["train"]
    assert len(json.loads((repo / "metrics/stats.json").read_text())["comparisons"]) == 4


def test_imagefolder_rgb_end_to_end(tmp_path):
    def imagefolder(p):
        _tiny(p)
        p["data"].update(source="imagefolder", root="data/raw/folder", image_size=None)
        p["noise"].update(kind="pairwise", rate=0.3, pairs=[[0, 1]])
        p["train"]["lr"] = 0.01

    repo = make_repo(tmp_path, imagefolder)
    make_imagefolder(repo / "data/raw/folder", n_per_class=20, size=16, rgb=True, fixed=True)
    _dvc(repo, "repro")
    manifest = json.loads((repo / "data/prepared/manifest.json").read_text())
    assert manifest["image_shape"] == [3, 16, 16] and manifest["class_index"] == {"cat": 0, "dog": 1, "fox": 2}
    assert manifest["n_samples"] == {"train": 36, "val": 12, "test": 12}
    assert (repo / "plots/explanations.png").exists()


def test_manifests_end_to_end(tmp_path):
    """A multi-class manifest, then (same repo) a multi-label one with groups."""
    repo = make_repo(tmp_path, lambda p: (_tiny(p), p["data"].update(source="manifest", file="data/raw/m/manifest.csv", image_size=None),
                                          p["noise"].update(kind="uniform", rate=0.1)))
    make_manifest(repo / "data/raw/m", n=60)
    _dvc(repo, "repro")
    manifest = json.loads((repo / "data/prepared/manifest.json").read_text())
    assert manifest["source"] == "manifest" and manifest["task"] == "multiclass" and manifest["image_shape"] == [1, 16, 16]

    make_manifest(repo / "data/raw/ml", n=90, multilabel=True, groups=True)

    def multilabel(p):
        p["data"].update(file="data/raw/ml/manifest.csv", label_separator="|", group_column="patient")
        p["noise"]["kind"] = "none"
        p["subsets"]["variants"] = ["global"]
        p["stats"]["metric"] = "macro_auroc"

    _set(repo, multilabel)
    _dvc(repo, "repro")
    prepared = pd.read_parquet(repo / "data/prepared/samples.parquet")
    by_split = prepared.groupby("split")["patient_id"].apply(set)
    assert not (by_split["train"] & by_split["test"]) and not (by_split["train"] & by_split["val"]) and not (by_split["val"] & by_split["test"])
    assert all(len(v) == 3 for v in prepared["label"])
    stats = json.loads((repo / "metrics/stats.json").read_text())
    assert stats["metric"] == "test.macro_auroc"
