"""Sharded TracIn and self-influence (influence.shards): the merged columns equal the unsharded
ones bit for bit in float64 on the CPU, serially, in a 2-worker local pool and on Ray."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sampleval.runtime.compute import Compute
from sampleval.influence.context import InfluenceContext
from sampleval.influence.runner import run_estimator
from sampleval.influence.core import Checkpoint, Samples, batch_bounds, batches
from sampleval.influence.tracin import self_influence_scores, shard_segments, sharded_scores, tracin_scores
from sampleval.training.losses import TrainingLoss


@pytest.fixture(scope="module")
def tiny():
    """A float64 conv net, 3 checkpoints, 23 training samples streamed from uint8 (batch 6:
    batches of 6, 6, 6, 5, so the last shard holds a smaller batch)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).double()
    ckpts = []
    for epoch, lr in ((1, 0.1), (2, 0.05), (3, 0.01)):
        for p in model.parameters():
            p.data += 0.2 * torch.randn_like(p)
        ckpts.append(Checkpoint(epoch, lr, {k: v.clone() for k, v in model.state_dict().items()}))
    rng = np.random.default_rng(0)
    imgs, labels = rng.integers(0, 256, (32, 1, 6, 6), dtype=np.uint8), rng.integers(0, 3, 32)
    train, val = Samples(imgs[:23], labels[:23], "multiclass"), Samples(imgs[23:], labels[23:], "multiclass")
    return model, ckpts, train, val, TrainingLoss("multiclass", 2.0, 0.05)


@pytest.mark.parametrize("n, batch_size, shards", [(23, 6, 2), (23, 6, 3), (23, 6, 9), (1167, 256, 2), (1167, 256, 3), (100, 7, 4), (5, 256, 2)])
def test_segments_reproduce_the_unsharded_batches(n, batch_size, shards):
    segments = shard_segments(n, batch_size, shards)
    assert len(segments) == min(shards, len(batch_bounds(n, batch_size)))
    x = torch.arange(n)
    cut = [(int(xb[0]), int(xb[-1]) + 1) for seg in segments for a, b, size in seg for xb, _ in batches(x[a:b], x[a:b], size)]
    assert cut == batch_bounds(n, batch_size)
    assert [len(list(batches(x, x, batch_size)))] == [len(batch_bounds(n, batch_size))]


@pytest.mark.parametrize("workers", [1, 2])
def test_two_shards_equal_one_bitwise_float64(tiny, workers):
    model, ckpts, train, val, loss_fn = tiny
    compute = Compute(workers=workers)
    for method in ("central", "jvp") if workers == 1 else ("central",):  # a pool start costs ~10 s here
        whole = tracin_scores(model, loss_fn, ckpts, train, val, batch_size=6, progress=False, method=method)
        for shards in (1, 2):
            sharded = sharded_scores("tracin", model, loss_fn, ckpts, train, val, 6, shards, compute, method)
            assert sharded.keys() == whole.keys()
            for col in whole:
                np.testing.assert_array_equal(sharded[col], whole[col], err_msg=f"{method} {shards} shards {col}")
    whole_self = self_influence_scores(model, loss_fn, ckpts, train, batch_size=6, progress=False)
    sharded_self = sharded_scores("self_influence", model, loss_fn, ckpts, train, None, 6, 2, compute)
    np.testing.assert_array_equal(sharded_self["self_influence"], whole_self)


def test_validation_gradient_from_the_driver_gives_the_same_bits(tiny):
    model, ckpts, train, val, loss_fn = tiny
    job = sharded_scores("tracin", model, loss_fn, ckpts, train, val, 6, 3, None, val_grad="job")
    driver = sharded_scores("tracin", model, loss_fn, ckpts, train, val, 6, 3, None, val_grad="driver")
    for col in job:
        np.testing.assert_array_equal(job[col], driver[col])
    with pytest.raises(ValueError, match="job, driver"):
        sharded_scores("tracin", model, loss_fn, ckpts, train, val, 6, 2, None, val_grad="worker")


def test_estimators_shard_through_the_context(tiny):
    """The registry entries honour ctx.shards / ctx.compute: the same columns and diagnostics."""
    model, ckpts, train, val, loss_fn = tiny

    def ctx(shards):
        return InfluenceContext(model=model, loss_fn=loss_fn, checkpoints=ckpts, final_state=ckpts[-1].state, train=train, val=val,
                                task="multiclass", n_classes=3, batch_size=6, final_epoch=3, shards=shards, compute=Compute(workers=1),
                                options={"tracin": {"burn_in": 1}})

    for name in ("tracin", "self_influence"):
        one, two = ctx(1), ctx(2)
        a, b = run_estimator(name, one), run_estimator(name, two)
        assert a.keys() == b.keys()
        for col in a:
            np.testing.assert_array_equal(a[col], b[col])
        assert one.diagnostics[name] == two.diagnostics[name]


def test_ray_shards_equal_local(tiny, shared_ray):
    model, ckpts, train, val, loss_fn = tiny
    whole = tracin_scores(model, loss_fn, ckpts, train, val, batch_size=6, progress=False)
    on_ray = sharded_scores("tracin", model, loss_fn, ckpts, train, val, 6, 2, Compute(backend="ray", workers=2))
    for col in whole:
        np.testing.assert_array_equal(on_ray[col], whole[col])


@pytest.mark.parametrize("value, ok", [(1, True), (4, True), ("auto", True), (0, False), ("all", False), (2.5, False)])
def test_shards_param_is_validated(value, ok):
    from pathlib import Path

    from sampleval.config import ParamsError, read_yaml, validate

    params = read_yaml((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    params["influence"]["shards"] = value
    if ok:
        validate(params)
    else:
        with pytest.raises(ParamsError, match="'influence.shards'"):
            validate(params)


def test_shards_resolve_auto_to_the_workers():
    from sampleval.influence.tracin import resolve_shards

    assert resolve_shards("auto", Compute(workers=3)) == 3
    assert resolve_shards(2, Compute(workers=3)) == 2
