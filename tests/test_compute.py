"""The executor: the same results in the same order at any worker count and on Ray; failures named."""
from __future__ import annotations

import numpy as np
import pytest

from sampleval.runtime.compute import Compute, ComputeError, JobCache, run_jobs


def _train_tiny(shared, seed):
    """A job that trains a tiny model: a pure function of (shared data, seed)."""
    import torch

    x, y = shared
    torch.manual_seed(seed)
    model = torch.nn.Linear(x.shape[1], 3, dtype=torch.float64)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(20):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
    return {"seed": seed, "loss": float(loss.detach()), "w": model.weight.detach().numpy().ravel().tolist()}


def _fails_on_two(shared, seed):
    if seed == 2:
        raise ValueError("bad seed")
    return seed


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(60, 5)), rng.integers(0, 3, 60)


def test_local_pool_equals_serial_in_job_order(data):
    seeds = [3, 1, 4, 0, 2]
    serial = run_jobs(_train_tiny, seeds, Compute(workers=1), shared=data)
    pooled = run_jobs(_train_tiny, seeds, Compute(workers=2), shared=data)
    assert [r["seed"] for r in pooled] == seeds
    assert pooled == serial  # bitwise: floats compared exactly


def test_failing_job_is_named(data):
    for workers in (1, 2):
        with pytest.raises(ComputeError, match=r"cell x: job seed 2 failed: ValueError: bad seed"):
            run_jobs(_fails_on_two, [0, 1, 2, 3], Compute(workers=workers), shared=data,
                     labels=[f"seed {s}" for s in range(4)], desc="cell x")


def test_cache_reads_back_and_runs_only_new_jobs(data, tmp_path, capsys):
    cache = JobCache(str(tmp_path), "data-v1")  # a str root as from stages.paths
    first = run_jobs(_train_tiny, [0, 1], Compute(workers=1), shared=data, cache=cache)
    assert len(list(tmp_path.glob("*.json"))) == 2
    second = run_jobs(_train_tiny, [0, 1, 2], Compute(workers=1), shared=data, cache=cache)
    assert second[:2] == first
    assert "2 of 3 jobs read from the job cache" in capsys.readouterr().err
    assert len(list(tmp_path.glob("*.json"))) == 3
    # another shared fingerprint is another key
    assert JobCache(tmp_path, "data-v2").key(_train_tiny, 0) != cache.key(_train_tiny, 0)


def test_unreachable_ray_address_fails_before_work(no_ray):
    with pytest.raises(ComputeError, match=r"compute.address '127.0.0.1:1'"):
        run_jobs(_train_tiny, [0], Compute(backend="ray", address="127.0.0.1:1"), shared=None)


def _dies_once(marker, job):
    """Kills its own worker process the first time (marker file absent), then succeeds."""
    import os
    from pathlib import Path

    if not Path(marker).exists():
        Path(marker).write_text("died")
        os._exit(1)
    return job * 10


def test_local_lost_worker_fails_naming_the_job(tmp_path):
    with pytest.raises(ComputeError, match=r"folds: job fold [01] lost its worker process"):
        run_jobs(_dies_once, [0, 1], Compute(workers=2), shared=str(tmp_path / "m"), labels=["fold 0", "fold 1"], desc="folds")


def test_ray_retries_a_lost_worker(tmp_path, no_ray):
    """Also the one test of run_jobs starting its own Ray instance (compute.address null) and
    stopping it when done; the other Ray tests join the shared one (tests/conftest.py)."""
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    got = run_jobs(_dies_once, [1], Compute(backend="ray", workers=1, max_retries=2), shared=str(tmp_path / "m"))
    assert got == [10] and (tmp_path / "m").exists()  # the first attempt died; Ray ran it again
    assert not no_ray.is_initialized()  # the instance run_jobs started is stopped


def test_ray_equals_local(data, shared_ray):
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import a test module
    seeds = [2, 0, 1]
    local = run_jobs(_train_tiny, seeds, Compute(workers=1), shared=data)
    ray_res = run_jobs(_train_tiny, seeds, Compute(backend="ray", workers=2), shared=data)
    assert ray_res == local
    with pytest.raises(ComputeError, match=r"job 2 failed: ValueError: bad seed"):
        run_jobs(_fails_on_two, [0, 1, 2], Compute(backend="ray", workers=2), shared=None)
    assert shared_ray.is_initialized()  # joined, not stopped: the instance was not run_jobs' own
