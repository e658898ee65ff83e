"""The influence stage's library (sampleval.influence.runner): estimators as executor jobs.

Where an estimator runs (in this process, in a 2-worker pool, or in the driver fanning out its
shards) never changes its columns, and the job cache recomputes only the estimators whose
inputs changed."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from sampleval.runtime.compute import Compute, JobCache
from sampleval.data.prepared import Prepared
from sampleval.influence.context import InfluenceSettings
from sampleval.influence.runner import run_estimator
from sampleval.influence.core import make_context
from sampleval.influence.core import Checkpoint
from sampleval.influence.runner import Baseline, baseline_fingerprint, fans_out, run_estimators
from sampleval.training.models import build_model
from sampleval.training.loop import TrainConfig

CFG = TrainConfig(epochs=3, batch_size=16, device="cpu")
INFLUENCE = InfluenceSettings(batch_size=16, damping=0.1, cg_iterations=20, tracin_method="central",
                              options={"tracin": {"burn_in": 0}, "if_last_layer": {"max_dense": 12000}})
METHODS = ["tracin", "loss", "if_last_layer"]


@pytest.fixture(scope="module")
def baseline():
    """Digits-shaped 8x8 images of 3 classes (50 train, 20 val) and a small CNN's 3 checkpoints
    (random weights that drift: the estimators need weights, not a good model)."""
    rng = np.random.default_rng(0)
    n = 80
    y = rng.integers(0, 3, n)
    images = (rng.random((n, 1, 8, 8)) * 80 + y[:, None, None, None] * 50).astype(np.uint8)
    table = pd.DataFrame({"row": np.arange(n), "sample_id": [f"s{i:03d}" for i in range(n)],
                          "split": ["train"] * 50 + ["val"] * 20 + ["test"] * 10, "label": y, "clean_label": y, "flipped": np.zeros(n, bool)})
    prepared = Prepared(images=images, table=table, task="multiclass", classes=["0", "1", "2"])
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 3, 8)
    ckpts = []
    for epoch, lr in ((1, 0.01), (2, 0.005), (3, 0.001)):
        for p in model.parameters():
            p.data += 0.05 * torch.randn_like(p)
        ckpts.append(Checkpoint(epoch, lr, {k: v.clone() for k, v in model.state_dict().items()}))
    return Baseline(prepared, CFG, ckpts, ckpts[-1].state, 3)


def _direct(b: Baseline, method: str) -> dict[str, np.ndarray]:
    ctx = make_context(b, InfluenceSettings.from_params(INFLUENCE, 0))
    return run_estimator(method, ctx)


def _assert_same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for col in a:
        np.testing.assert_array_equal(a[col], b[col], err_msg=col)


def test_jobs_in_a_pool_give_the_estimators_own_columns(baseline):
    serial = run_estimators(baseline, METHODS, INFLUENCE, Compute(workers=1))
    pooled = run_estimators(baseline, METHODS, INFLUENCE, Compute(workers=2))
    assert list(serial) == list(pooled) == METHODS
    for m in METHODS:
        _assert_same(serial[m].columns, _direct(baseline, m))
        _assert_same(pooled[m].columns, serial[m].columns)
        assert pooled[m].diagnostics == serial[m].diagnostics
    assert serial["tracin"].diagnostics["epochs_used"] == [1, 2, 3]


def test_sharded_estimators_run_in_the_driver_with_the_same_bits(baseline):
    assert fans_out("trak", 1) and fans_out("tracin", 2) and not fans_out("tracin", 1) and not fans_out("loss", 4)
    one = run_estimators(baseline, ["tracin", "self_influence"], INFLUENCE, Compute(workers=1), shards=1)
    three = run_estimators(baseline, ["tracin", "self_influence"], INFLUENCE, Compute(workers=1), shards=3)
    for m in one:
        _assert_same(three[m].columns, one[m].columns)


def test_job_cache_recomputes_only_changed_estimators(baseline, tmp_path, capfd):
    cache = JobCache(tmp_path, baseline_fingerprint(baseline))
    first = run_estimators(baseline, ["tracin", "loss"], INFLUENCE, Compute(workers=1), cache=cache)
    assert len(list(tmp_path.glob("*.json"))) == 2
    capfd.readouterr()
    grown = run_estimators(baseline, ["tracin", "loss", "if_last_layer"], INFLUENCE, Compute(workers=1), cache=cache)
    assert "2 of 3 jobs read from the job cache" in capfd.readouterr().err
    for m in first:  # read back bit for bit, diagnostics included
        _assert_same(grown[m].columns, first[m].columns)
        assert grown[m].diagnostics == first[m].diagnostics
    # one estimator's options are part of its own key only
    changed = replace(INFLUENCE, options={**INFLUENCE.options, "tracin": {"burn_in": 1}})
    again = run_estimators(baseline, ["tracin", "loss", "if_last_layer"], changed, Compute(workers=1), cache=cache)
    assert "2 of 3 jobs read from the job cache" in capfd.readouterr().err
    assert again["tracin"].diagnostics["epochs_used"] == [2, 3]
    # a shared setting (damping) is part of every key
    run_estimators(baseline, ["loss"], replace(INFLUENCE, damping=0.2), Compute(workers=1), cache=cache)
    assert "read from the job cache" not in capfd.readouterr().err


def test_fingerprint_follows_the_weights(baseline):
    nudged = [Checkpoint(c.epoch, c.lr, {k: v.clone() for k, v in c.state.items()}) for c in baseline.checkpoints]
    first = next(iter(nudged[0].state))
    nudged[0].state[first].view(-1)[0] += 1e-6
    other = Baseline(baseline.prepared, baseline.cfg, nudged, baseline.final_state, baseline.final_epoch)
    assert baseline_fingerprint(baseline) == baseline_fingerprint(baseline) != baseline_fingerprint(other)


def test_one_loader_reads_the_training_outputs(baseline, tmp_path):
    """Baseline.load and load_selected_model read models/model.pt the same way (the one
    reader, load_selected); make_context puts the baseline and the settings into the context."""
    from sampleval.training.checkpoints import epoch_checkpoint_path
    from sampleval.influence.context import load_selected_model
    from sampleval.io import torch_save

    b = baseline
    for c in b.checkpoints:
        torch_save(epoch_checkpoint_path(tmp_path / "ckpt", c.epoch), {"model": c.state, "lr": c.lr, "epoch": c.epoch})
    torch_save(tmp_path / "model.pt", {"model": b.checkpoints[1].state, "epoch": 2})
    loaded = Baseline.load(b.prepared, b.cfg, tmp_path / "ckpt", tmp_path / "model.pt")
    assert loaded.final_epoch == 2 and [c.epoch for c in loaded.checkpoints] == [c.epoch for c in b.checkpoints]
    for model in (loaded.selected_model(), load_selected_model(b.prepared, b.cfg, tmp_path / "model.pt")):
        for k, v in model.state_dict().items():
            assert torch.equal(v, b.checkpoints[1].state[k]), k
    ctx = make_context(loaded, InfluenceSettings.from_params(INFLUENCE, 7), shards=3)
    assert (ctx.batch_size, ctx.damping, ctx.cg_iterations, ctx.tracin_method, ctx.seed, ctx.shards) == (16, 0.1, 20, "central", 7, 3)
    assert ctx.final_epoch == 2 and ctx.train_config is b.cfg and ctx.options_of("tracin").burn_in == 0
    torch_save(tmp_path / "bad.pt", {"epoch": 2})
    with pytest.raises(ValueError, match="has no 'model' entry"):
        load_selected_model(b.prepared, b.cfg, tmp_path / "bad.pt")
