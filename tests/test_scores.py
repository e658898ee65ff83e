"""The scores table and its summary: merging, the sign by kind, detection against scikit-learn,
agreement, diagnostics."""
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from sampleval.data.prepared import DataError, Prepared
from sampleval.influence.scores import detection_curve, detection_summary, influence_summary, merge_diagnostics, merge_scores, ranking_columns, suspicion


def _prepared(n=6):
    table = pd.DataFrame({
        "sample_id": [f"s{i}" for i in range(n + 2)], "split": ["train"] * n + ["val", "test"], "label": list(range(n + 2)),
        "clean_label": list(range(n + 2)), "flipped": [i % 3 == 0 for i in range(n + 2)], "row": list(range(n + 2)),
    })
    return Prepared(images=np.zeros((n + 2, 1, 2, 2), np.uint8), table=table, task="multiclass", classes=[str(i) for i in range(n + 2)])


def _write(tmp_path, method, columns, ids=None):
    ids = ids if ids is not None else [f"s{i}" for i in range(6)]
    pd.DataFrame({"sample_id": ids, **columns}).to_parquet(tmp_path / f"{method}.parquet")


def test_merge_scores_checks_order_and_clashes(tmp_path):
    _write(tmp_path, "tracin", {"tracin": np.arange(6.0), "tracin_epoch_001": np.arange(6.0)})
    _write(tmp_path, "self_influence", {"self_influence": np.ones(6)})
    table = merge_scores(_prepared(), ["tracin", "self_influence"], tmp_path)
    assert list(table.columns) == ["sample_id", "split", "label", "clean_label", "flipped", "tracin", "tracin_epoch_001", "self_influence"]
    assert (table["split"] == "train").all() and len(table) == 6
    _write(tmp_path, "loss", {"loss": np.ones(6)}, ids=[f"s{i}" for i in reversed(range(6))])
    with pytest.raises(DataError, match="does not cover the current training set in order"):
        merge_scores(_prepared(), ["loss"], tmp_path)
    _write(tmp_path, "loss", {"loss": np.ones(6), "tracin": np.ones(6)})
    with pytest.raises(DataError, match="already present"):
        merge_scores(_prepared(), ["tracin", "loss"], tmp_path)
    with pytest.raises(DataError, match="missing"):
        merge_scores(_prepared(), ["cleanlab"], tmp_path)


def test_suspicion_follows_the_registry_kind():
    table = pd.DataFrame({"tracin": [1.0, -2.0], "self_influence": [1.0, 3.0], "tracincp_self_influence": [0.5, 0.1]})
    assert list(suspicion(table, "tracin")) == [-1.0, 2.0]  # signed: harmful (low) is suspicious
    assert list(suspicion(table, "self_influence")) == [1.0, 3.0]  # magnitude: high is suspicious
    assert list(suspicion(table, "tracincp_self_influence")) == [0.5, 0.1]
    assert ranking_columns(table, ["tracin"]) == ["tracin", "self_influence", "tracincp_self_influence"]


def test_detection_against_sklearn():
    rng = np.random.default_rng(0)
    flipped = rng.random(200) < 0.1
    susp = rng.normal(size=200) + 2 * flipped
    out = detection_summary(flipped, susp)
    assert out["auroc"] == pytest.approx(roc_auc_score(flipped, susp))
    k = int(flipped.sum())
    assert out["found_in_top_n_flipped"] == pytest.approx(flipped[np.argsort(-susp)[:k]].mean())
    grid, found = detection_curve(flipped, susp)
    assert found[0] == 0 and found[-1] == 1 and np.all(np.diff(found) >= 0) and len(grid) == 101
    assert detection_summary(np.zeros(5, bool), np.arange(5.0)) == {}  # nothing to detect


def test_influence_summary_agreement_and_signs():
    rng = np.random.default_rng(1)
    a = rng.normal(size=100)
    table = pd.DataFrame({"flipped": rng.random(100) < 0.2, "tracin": a, "tracincp": a * 1.001, "self_influence": np.abs(a)})
    out = influence_summary(table, ["tracin", "tracincp", "self_influence"])
    assert out["n_train"] == 100 and out["agreement"]["spearman"] == pytest.approx(1.0)
    assert out["agreement"]["max_rel_error"] == pytest.approx(0.001 / 1.001, rel=1e-6)
    assert out["self_influence"]["share_negative"] == 0.0 and "detect" in out["tracin"]


def test_merge_diagnostics_keeps_tiny_numbers_readable(tmp_path):
    (tmp_path / "if_cg.json").write_text(json.dumps({"solver": "cg", "relative_residual": 3.2e-7, "iterations": 12, "damping": 0.1}))
    out = merge_diagnostics(["if_cg"], tmp_path)
    assert out == {"if_cg": {"solver": "cg", "relative_residual": "3.20e-07", "iterations": 12, "damping": 0.1}}
    with pytest.raises(DataError, match="diagnostics for 'loss' missing"):
        merge_diagnostics(["loss"], tmp_path)
