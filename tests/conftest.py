from concurrent.futures import ThreadPoolExecutor

import pytest

import sampleval  # noqa: F401  first: pins the CPU kernels (sampleval.runtime.kernels) before torch loads
import torch  # noqa: E402
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="session", autouse=True)
def _one_thread_session():
    """One thread from the start of the session, so that module-scoped fixtures (set up before
    any function-scoped one, so before ``_one_thread``) get it too: with two threads while
    other work shared the 2 cores, test_peers' ``references`` fixture (if_cg on a SmallCNN)
    took 94 s instead of 12 s."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(old)


@pytest.fixture(autouse=True)
def _one_thread():
    """The test models are tiny: one thread (torch and BLAS) is faster than two and immune
    to oversubscription when other work shares the cores. Per test too, in case a test changes it."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(old)


# --- Ray: one private instance for the tests that only need one (its start costs 10-25 s on 2 cores)


@pytest.fixture(scope="session")
def _ray_instances():
    ray = pytest.importorskip("ray")
    yield ray
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def shared_ray(_ray_instances):
    """A running private 2-CPU Ray instance, started as ``compute.backend: ray`` starts one
    (``sampleval.runtime.compute.ray_session``) and kept for the next test that asks for it.
    ``run_jobs`` joins an instance that is already running and leaves it running."""
    from sampleval.runtime.compute import Compute, ray_session

    ray = _ray_instances
    if not ray.is_initialized():
        ray_session(Compute(backend="ray", workers=2))
    return ray


@pytest.fixture
def no_ray(_ray_instances):
    """No Ray instance running in this process (``shared_ray``'s is shut down; the next test
    that asks for it starts a new one): for tests of starting, joining and stopping one."""
    ray = _ray_instances
    if ray.is_initialized():
        ray.shutdown()
    return ray


# --- end-to-end runs in the background


@pytest.fixture(scope="session", autouse=True)
def background_runs(request, tmp_path_factory):
    """The selected tests' independent end-to-end runs, started with the session in one
    background thread, one after another: test name -> future of what the run returns.

    A module lists them as ``BACKGROUND_RUNS = {test name: run(folder)}``; the test waits for
    its future and asserts on the result (a failed `dvc repro` raises there). A `dvc repro`
    is a chain of mostly single-threaded stage processes, so it runs alongside the other
    tests (one core each) instead of after them. Deselected tests start nothing."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dvc-repro")
    futures = {}
    for item in request.session.items:
        run = getattr(item.module, "BACKGROUND_RUNS", {}).get(item.originalname)
        if run is not None and item.originalname not in futures:
            futures[item.originalname] = pool.submit(run, tmp_path_factory.mktemp(item.originalname))
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)
