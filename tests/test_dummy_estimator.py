"""Adding an estimator is one registry entry: a dummy registered in
``sampleval.influence.registry.ESTIMATORS`` (its function in this module) runs through the
influence runner beside a real estimator, and its columns (main and magnitude) arrive in the
scores table and its summary with their registry kind."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from sampleval.data.prepared import Prepared
from sampleval.influence import registry
from sampleval.influence.core import Checkpoint, record
from sampleval.influence.registry import MAGNITUDE, SIGNED, Estimator
from sampleval.influence.runner import Baseline, run_estimators
from sampleval.influence.scores import influence_summary, merge_scores, ranking_columns
from sampleval.training.loop import TrainConfig
from sampleval.training.models import build_model
from sampleval.influence.settings import InfluenceSettings

INFLUENCE = InfluenceSettings(batch_size=16, damping=0.1, cg_iterations=20, tracin_method="central", options={})


def estimate_dummy(ctx) -> dict[str, np.ndarray]:
    """A registry estimator: reads the context as the real ones do and records its diagnostics."""
    labels = np.asarray(ctx.train.labels, dtype=np.float64)
    record(ctx, "dummy", {"seed": int(ctx.seed), "n": len(labels)})
    return {"dummy": labels - 1.0 + 0.01 * ctx.seed, "dummy_self_influence": labels**2}


@pytest.fixture
def dummy(monkeypatch):
    entry = Estimator("dummy", f"{__name__}:estimate_dummy", SIGNED, magnitude_columns=("dummy_self_influence",), influence=False)
    monkeypatch.setitem(registry.ESTIMATORS, "dummy", entry)
    return entry


@pytest.fixture(scope="module")
def baseline():
    """3-class 8x8 images (30 train, 12 val, 6 test) and two checkpoints of a small CNN."""
    rng = np.random.default_rng(0)
    n = 48
    y = rng.integers(0, 3, n)
    images = (rng.random((n, 1, 8, 8)) * 80 + y[:, None, None, None] * 50).astype(np.uint8)
    flipped = np.zeros(n, bool)
    flipped[:4] = True
    table = pd.DataFrame({"row": np.arange(n), "sample_id": [f"s{i:03d}" for i in range(n)],
                          "split": ["train"] * 30 + ["val"] * 12 + ["test"] * 6, "label": y, "clean_label": y, "flipped": flipped})
    prepared = Prepared(images=images, table=table, task="multiclass", classes=["0", "1", "2"])
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 3, 8)
    ckpts = [Checkpoint(e, lr, {k: v.clone() for k, v in model.state_dict().items()}) for e, lr in ((1, 0.01), (2, 0.005))]
    return Baseline(prepared, TrainConfig(epochs=2, batch_size=16, device="cpu"), ckpts, ckpts[-1].state, 2)


def test_registered_dummy_runs_and_reaches_the_scores_table(dummy, baseline, tmp_path):
    results = run_estimators(baseline, ["loss", "dummy"], replace(INFLUENCE, seed=3))
    assert list(results) == ["loss", "dummy"]
    y = baseline.prepared.split("train").y.astype(np.float64)
    got = results["dummy"]
    assert list(got.columns) == ["dummy", "dummy_self_influence"]
    np.testing.assert_array_equal(got.columns["dummy"], y - 1.0 + 0.03)  # the run's seed reached the context
    assert got.diagnostics == {"seed": 3, "n": 30}
    ids = baseline.prepared.split("train").ids
    for method, result in results.items():  # what the influence stage writes, one file per estimator
        pd.DataFrame({"sample_id": ids, **result.columns}).to_parquet(tmp_path / f"{method}.parquet")
    table = merge_scores(baseline.prepared, ["loss", "dummy"], tmp_path)
    np.testing.assert_array_equal(table["dummy"].to_numpy(), got.columns["dummy"])
    np.testing.assert_array_equal(table["dummy_self_influence"].to_numpy(), y**2)
    assert registry.column_kind("dummy_self_influence") == MAGNITUDE
    assert ranking_columns(table, ["loss", "dummy"]) == ["loss", "dummy", "dummy_self_influence"]
    summary = influence_summary(table, ["loss", "dummy"])
    assert summary["dummy"]["min"] == pytest.approx(-0.97) and summary["dummy"]["share_negative"] > 0
    assert summary["dummy_self_influence"]["detect"]["auroc"] == pytest.approx(roc_auc_score(table["flipped"], y**2))  # a magnitude: high = suspicious


def test_unregistered_name_is_refused(baseline):
    with pytest.raises(ValueError, match="unknown influence estimator 'dummy'"):
        run_estimators(baseline, ["dummy"], INFLUENCE)
