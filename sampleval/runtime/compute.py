"""Independent jobs, here or on a Ray cluster, with results that do not depend on where they ran.

Most of the pipeline's work is independent training runs: the seeds of a subset cell, the
leave-one-out and LDS retrainings of fidelity, the detection cells, cleanlab's folds, the
refinement controls, TRAK's ensemble, and shards of the training set scored by TracIn. They
all go through :func:`run_jobs`, the one place that knows how to fan out:

- ``local`` (the default): a process pool on this machine with ``compute.workers`` processes
  (``auto`` = the number of cores). Workers come from a fork server that has imported torch
  once, and each keeps ``train.cpu_threads`` torch threads. One worker runs the jobs in this
  process, with no pool.
- ``ray``: Ray tasks on a cluster (``compute.address``: ``null`` starts a private local
  instance with ``compute.workers`` CPUs, ``auto`` joins the cluster of ``ray start --head``
  on this machine, ``host:port`` a remote one). Each task asks Ray for ``compute.gpus_per_job``
  GPUs, so Ray places jobs on GPUs; nothing here pins devices. A task whose worker dies is
  retried by Ray (``max_retries``); an exception inside a job is not retried.

A job is ``fn(shared, job)``: a module-level function of a read-only object every job shares
(the prepared data, sent once per worker) and of its own small spec (a seed, a subset, a
shard). It must be a pure function of those two: it seeds everything it draws from. Results
come back in the order of ``jobs``, so the same params give identical outputs at any number
of workers, on either backend (tests/test_compute.py).

Two things a job must not do: modify ``shared`` in place (the local pool sends torch tensors
through shared memory, so every worker sees the same storage: copy a model before loading
weights into it), and live in a script's ``__main__`` (workers import the main module, so a
script that calls :func:`run_jobs` needs the usual ``if __name__ == "__main__":`` guard;
the stages have it).

Optional job cache (:class:`JobCache`): a finished job's JSON result is stored under a key
that hashes the function, the job spec, the shared object's fingerprint, the library's source
and the torch version; the same job later is read back instead of run. It makes a stage that
holds many cells rerun only its new cells when a list in params grows.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import socket
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from sampleval.runtime.determinism import configure_torch
from sampleval.runtime.kernels import pinned
from sampleval.runtime.settings import BACKENDS


class ComputeError(RuntimeError):
    """A job failed, or the compute backend cannot be used (one line, names the job or the fix)."""


@dataclass(frozen=True)
class Compute:
    backend: str = "local"
    workers: int = 1
    address: str | None = None
    gpus_per_job: float = 0.0
    cpu_threads: int = 1
    max_retries: int = 3

    @classmethod
    def from_params(cls, params) -> "Compute":
        """From :class:`sampleval.config.Params`: its ``compute`` section and ``train.cpu_threads``."""
        c = params.compute
        workers = (os.cpu_count() or 1) if c.workers == "auto" else c.workers
        return cls(backend=c.backend, workers=int(workers), address=c.address, gpus_per_job=float(c.gpus_per_job or 0),
                   cpu_threads=int(params.train.cpu_threads), max_retries=int(c.max_retries))

    def serial(self) -> "Compute":
        """The same settings, run in this process (for jobs nested inside a job)."""
        return Compute("local", 1, None, self.gpus_per_job, self.cpu_threads, self.max_retries)


SERIAL = Compute()


def pack_mask(mask) -> str:
    """A boolean mask as a short JSON-friendly string (hex of its packed bits): a job spec."""
    import numpy as np

    return np.packbits(np.asarray(mask, dtype=bool)).tobytes().hex()


def unpack_mask(text: str, n: int):
    import numpy as np

    return np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8), count=n).astype(bool)


# --- job cache ----------------------------------------------------------------------------

def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.ndarray):
        return {"__ndarray__": hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest(), "dtype": str(obj.dtype), "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return {"__dataclass__": type(obj).__qualname__, **asdict(obj)}
    raise TypeError(f"job specs must be JSON-like to be cached, got {type(obj).__name__}")


def code_fingerprint() -> str:
    """Hash of the library's source files and the torch version: any code change invalidates the cache."""
    import torch

    root = Path(__file__).resolve().parents[1]  # the whole package
    h = hashlib.sha256(torch.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@dataclass(frozen=True)
class JobCache:
    """Finished jobs' JSON results under ``root``, keyed by everything that determines them.

    ``shared_fingerprint`` must identify the shared object (e.g. a hash of the prepared data)."""

    root: Path
    shared_fingerprint: str

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    def key(self, fn: Callable, job: Any) -> str:
        text = _canonical([fn.__module__, fn.__qualname__, job, self.shared_fingerprint, _CODE()])
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str) -> Any | None:
        path = self.root / f"{key}.json"
        if not path.exists():
            return None
        with open(path) as fh:
            return json.load(fh)["result"]

    def put(self, key: str, result: Any) -> None:
        from sampleval.io import atomic_path

        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.root / f"{key}.json") as tmp:
            Path(tmp).write_text(json.dumps({"result": result}))


_code_fp: str | None = None


def _CODE() -> str:
    global _code_fp
    if _code_fp is None:
        _code_fp = code_fingerprint()
    return _code_fp


# --- workers ------------------------------------------------------------------------------

_SHARED: Any = None


def _init_worker(shared: Any, cpu_threads: int) -> None:
    global _SHARED
    _SHARED = shared
    configure_torch(cpu_threads)


def _pool_call(fn: Callable, job: Any) -> Any:
    return fn(_SHARED, job)


def _ray_call(fn: Callable, shared: Any, job: Any, cpu_threads: int) -> Any:
    configure_torch(cpu_threads)
    return fn(shared, job)


def _label(labels: Sequence[str] | None, i: int, job: Any) -> str:
    if labels is not None:
        return str(labels[i])
    return str(job)


def _failed(desc: str, label: str, exc: BaseException) -> ComputeError:
    msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return ComputeError(f"{desc}: job {label} failed: {type(exc).__name__}: {msg}")


def _bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="job", file=sys.stderr, mininterval=1.0, disable=total <= 1)


def run_jobs(
    fn: Callable[[Any, Any], Any],
    jobs: Sequence[Any],
    compute: Compute = SERIAL,
    *,
    shared: Any = None,
    labels: Sequence[str] | None = None,
    desc: str = "jobs",
    cache: JobCache | None = None,
) -> list:
    """``[fn(shared, job) for job in jobs]``, fanned out by ``compute``; results in job order.

    A failing job stops the run with a :class:`ComputeError` naming it (``labels[i]``, else the
    job spec). With ``cache``, jobs already computed are read back and only the others run."""
    jobs = list(jobs)
    results: list = [None] * len(jobs)
    todo = list(range(len(jobs)))
    keys: list[str | None] = [None] * len(jobs)
    if cache is not None:
        todo = []
        for i, job in enumerate(jobs):
            keys[i] = cache.key(fn, job)
            hit = cache.get(keys[i])
            if hit is None:
                todo.append(i)
            else:
                results[i] = hit
        if len(todo) < len(jobs):
            print(f"{desc}: {len(jobs) - len(todo)} of {len(jobs)} jobs read from the job cache {cache.root}", file=sys.stderr)

    def done(i: int, value: Any) -> None:
        if cache is not None:
            cache.put(keys[i], value)
            value = json.loads(json.dumps(value))  # the same types a cache hit returns
        results[i] = value

    if not todo:
        return results
    if compute.backend == "ray":
        _run_ray(fn, jobs, todo, compute, shared, labels, desc, done)
    elif compute.backend == "local" and (compute.workers <= 1 or len(todo) == 1):
        with _bar(len(todo), desc) as bar:
            for i in todo:
                try:
                    value = fn(shared, jobs[i])
                except ComputeError:
                    raise
                except Exception as exc:  # noqa: BLE001 - named and re-raised in one line
                    raise _failed(desc, _label(labels, i, jobs[i]), exc) from exc
                done(i, value)
                bar.update()
    elif compute.backend == "local":
        _run_pool(fn, jobs, todo, compute, shared, labels, desc, done)
    else:
        raise ComputeError(f"compute.backend {compute.backend!r} is unknown (allowed: {', '.join(BACKENDS)})")
    return results


def _run_pool(fn, jobs, todo, compute, shared, labels, desc, done) -> None:
    ctx = mp.get_context("forkserver")
    # the fork server imports torch and the library once; workers fork from it, clean of this
    # process's threads (forking a process that has run torch ops can deadlock in OpenMP)
    ctx.set_forkserver_preload(["torch", "sampleval.training.loop"])
    with _bar(len(todo), desc) as bar, ProcessPoolExecutor(
        max_workers=min(compute.workers, len(todo)), mp_context=ctx,
        initializer=_init_worker, initargs=(shared, compute.cpu_threads),
    ) as pool:
        futures = {pool.submit(_pool_call, fn, jobs[i]): i for i in todo}
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(finished, key=futures.get):
                    i = futures[fut]
                    try:
                        value = fut.result()
                    except BrokenProcessPool as exc:
                        raise ComputeError(f"{desc}: job {_label(labels, i, jobs[i])} lost its worker process (killed, e.g. out of memory); rerun with fewer compute.workers") from exc
                    except ComputeError:
                        raise
                    except Exception as exc:  # noqa: BLE001
                        raise _failed(desc, _label(labels, i, jobs[i]), exc) from exc
                    done(i, value)
                    bar.update()
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise


# --- ray ----------------------------------------------------------------------------------

def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail before any work when a ``host:port`` Ray address does not answer."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ComputeError(f"compute.address {address!r} is not host:port, auto or null; fix compute.address")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ComputeError(f"compute.address {address!r}: no Ray cluster answers there ({exc.strerror or exc}); start one with `ray start --head` or fix compute.address") from exc


def ray_session(compute: Compute):
    """Connect to (or start) Ray per ``compute``; returns ``(ray, started_here)``."""
    try:
        import ray
    except ImportError as exc:
        raise ComputeError("compute.backend ray needs Ray: pip install -e '.[ray]' (or set compute.backend: local)") from exc
    if ray.is_initialized():
        return ray, False
    kwargs = dict(include_dashboard=False, logging_level="ERROR", log_to_driver=True)
    # the kernel pins (sampleval.runtime.kernels): a cluster's workers did not inherit this environment
    env = {**pinned(), **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {})}
    try:
        if compute.address is None:
            ray.init(num_cpus=compute.workers, runtime_env={"env_vars": env} if env else None, **kwargs)
        else:
            if compute.address != "auto":
                _check_reachable(compute.address)
            ray.init(address=compute.address, runtime_env={"env_vars": env} if env else None, **kwargs)
    except ComputeError:
        raise
    except (ConnectionError, RuntimeError) as exc:
        raise ComputeError(f"compute.address {compute.address!r}: cannot join a Ray cluster ({str(exc).splitlines()[0]}); start one with `ray start --head` or fix compute.address") from exc
    return ray, True


def _run_ray(fn, jobs, todo, compute, shared, labels, desc, done) -> None:
    ray, started = ray_session(compute)
    try:
        task = ray.remote(_ray_call).options(
            num_cpus=1, num_gpus=compute.gpus_per_job, max_retries=compute.max_retries, retry_exceptions=False,
        )
        shared_ref = ray.put(shared)
        refs = {task.remote(fn, shared_ref, jobs[i], compute.cpu_threads): i for i in todo}
        pending = list(refs)
        with _bar(len(todo), desc) as bar:
            while pending:
                finished, pending = ray.wait(pending, num_returns=1)
                for ref in finished:
                    i = refs[ref]
                    try:
                        value = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                        if isinstance(cause, ComputeError):
                            raise ComputeError(str(cause)) from exc
                        raise _failed(desc, _label(labels, i, jobs[i]), cause) from exc
                    except ray.exceptions.RayError as exc:
                        raise ComputeError(f"{desc}: job {_label(labels, i, jobs[i])} was lost after {compute.max_retries} retries ({type(exc).__name__})") from exc
                    done(i, value)
                    bar.update()
    finally:
        if started:
            ray.shutdown()
