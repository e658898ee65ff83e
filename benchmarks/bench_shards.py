"""Sharded influence and the executor's per-job overhead, measured in one run (issue 14).

Part 1, sharded TracIn and self-influence on the default data (digits, the baseline's 10
checkpoints, ``influence.batch_size`` 256, the pipeline's thread settings): the unsharded
estimator against 2 shards on a 2-worker local pool, with the summed validation gradient
computed in every job (``val_grad='job'``, the default) and computed once in the driver and
shipped (``'driver'``); every sharded result is compared bit for bit with the unsharded one,
and the tracin parquet written as the stage writes it is compared byte for byte with the
pipeline's (``--root``'s data/influence/methods/tracin.parquet). It also times the parts:
the validation gradient against the training directional derivatives, one checkpoint each,
and what the shared object costs (pickled in memory, against loading the checkpoints from
their paths).

Part 2, the executor (``sampleval.runtime.compute.run_jobs``) with 2 workers, ``local`` and ``ray``:
an empty job (2 and 50 jobs: the marginal wall time per job) and a one-epoch training job
(``sampleval.training.retrain.train_and_evaluate`` with ``train.epochs`` 1; 4 jobs against the
same 4 in this process). ``local`` starts a pool in every call (its start-up is in each
time); ``ray`` starts a private 2-CPU instance once and its worker processes on a first call
(both timed apart), and the calls reuse them.
The jobs are defined in this script, so the local workers import it (as they import a
stage's module): part of the start-up, as in a stage.

    OMP_NUM_THREADS=1 python benchmarks/bench_shards.py --root /work/main   # needs a `dvc repro`ed root
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import pickle
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import stages  # noqa: E402,F401  (pins OpenBLAS like the stages, before numpy)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from sampleval.runtime.compute import Compute, run_jobs  # noqa: E402
from sampleval.runtime.determinism import configure_torch  # noqa: E402
from sampleval.config import load  # noqa: E402
from sampleval.data.prepared import load_prepared  # noqa: E402
from sampleval.influence.context import Baseline, InfluenceSettings
from sampleval.influence.core import make_context  # noqa: E402
from sampleval.influence.core import full_float32, load_checkpoints, streamable, summed_gradient, directional_derivatives  # noqa: E402
from sampleval.influence.tracin import ShardInputs, self_influence_scores, sharded_scores, tracin_scores  # noqa: E402
from sampleval.io import write_parquet  # noqa: E402
from sampleval.training.loop import TrainConfig  # noqa: E402
from stages import paths  # noqa: E402


def empty_job(shared, job):
    return job


def one_epoch_job(shared, seed):
    from sampleval.training.retrain import train_and_evaluate

    prepared, cfg = shared
    _, metrics = train_and_evaluate(prepared, cfg, seed)
    return float(metrics["val"]["accuracy"])


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def best_of(fn, repeats: int = 3):
    """The result and the shortest of ``repeats`` timings (the machine is shared: the
    shortest is the least disturbed)."""
    runs = [timed(fn) for _ in range(repeats)]
    return runs[0][0], min(t for _, t in runs)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=str(ROOT), help="a repository after `dvc repro` (prepared data, checkpoints, tracin.parquet)")
    ap.add_argument("--skip-ray", action="store_true")
    args = ap.parse_args()
    root = Path(args.root)
    params = load(ROOT / "params.yaml")
    configure_torch(params.train.cpu_threads)
    cfg = TrainConfig.from_params(params)
    prepared = load_prepared(root / paths.PREPARED)
    ctx = make_context(Baseline.load(prepared, cfg, root / paths.CHECKPOINTS, root / paths.MODEL), InfluenceSettings.from_params(params.influence, params.seed))
    bs, method, ck = ctx.batch_size, ctx.tracin_method, ctx.checkpoints
    n_train, n_val = len(streamable(ctx.train)[0]), len(streamable(ctx.val)[0])
    local2 = replace(Compute.from_params(params), backend="local", workers=2, address=None)
    print(f"# bench_shards {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"data: {n_train} train, {n_val} val, {len(ck)} checkpoints, batch {bs}, method {method}")

    # --- part 1: sharded influence -------------------------------------------------------
    # the first pool of a process also starts the fork server (kept for later pools): not in any row below
    _, t_fs = timed(lambda: run_jobs(empty_job, [0, 1], local2))
    print(f"first local pool of this process (fork server start, 2 empty jobs): {t_fs:.2f} s")
    whole, t1 = best_of(lambda: tracin_scores(ctx.model, ctx.loss_fn, ck, ctx.train, ctx.val, bs, progress=False, method=method))
    job2, t2j = timed(lambda: sharded_scores("tracin", ctx.model, ctx.loss_fn, ck, ctx.train, ctx.val, bs, 2, local2, method, val_grad="job"))
    drv2, t2d = timed(lambda: sharded_scores("tracin", ctx.model, ctx.loss_fn, ck, ctx.train, ctx.val, bs, 2, local2, method, val_grad="driver"))
    ser2, t2s = timed(lambda: sharded_scores("tracin", ctx.model, ctx.loss_fn, ck, ctx.train, ctx.val, bs, 2, None, method))
    print("\n## tracin, 1 vs 2 shards (local, 2 workers; in-process times: best of 3, pool times: one run)")
    print("| run | seconds | speed-up | bitwise equal to unsharded |\n|---|---|---|---|")
    print(f"| unsharded (in process) | {t1:.2f} | 1.00x | - |")
    print(f"| 2 shards, val gradient in each job | {t2j:.2f} | {t1 / t2j:.2f}x | {same(job2, whole)} |")
    print(f"| 2 shards, val gradient in the driver, shipped | {t2d:.2f} | {t1 / t2d:.2f}x | {same(drv2, whole)} |")
    print(f"| 2 shards, serial (no pool) | {t2s:.2f} | {t1 / t2s:.2f}x | {same(ser2, whole)} |")

    from sampleval.influence.tracin import score_shard, shard_segments

    seg = shard_segments(n_train, bs, 2)
    inputs = ShardInputs(ctx.model.cpu(), ctx.loss_fn, list(ck), streamable(ctx.train), streamable(ctx.val), bs, method)
    job_times = [best_of(lambda: score_shard(inputs, {"kind": "tracin", "segments": sg}))[1] for sg in seg]
    print(f"the 2 shard jobs alone, in this process: {', '.join(f'{t:.2f} s ({sg[-1][1] - sg[0][0]} samples)' for t, sg in zip(job_times, seg))}: "
          f"without start-up, 2 workers would take the longer one, {t1 / max(job_times):.2f}x the unsharded")

    ws, s1 = timed(lambda: self_influence_scores(ctx.model, ctx.loss_fn, ck, ctx.train, bs, progress=False))
    ss, s2 = timed(lambda: sharded_scores("self_influence", ctx.model, ctx.loss_fn, ck, ctx.train, None, bs, 2, local2))
    print("\n## self_influence, 1 vs 2 shards (local, 2 workers)")
    print(f"unsharded {s1:.2f} s, 2 shards {s2:.2f} s: {s1 / s2:.2f}x, bitwise equal: {np.array_equal(ss['self_influence'], ws)}")

    target = root / paths.method_scores("tracin")
    if target.exists():
        print("\n## the stage's parquet (tracin with the default options)")
        committed = target.read_bytes()
        from sampleval.influence.tracin import estimate_tracin

        for shards in (1, 2):
            ctx.shards, ctx.compute = shards, local2
            cols = estimate_tracin(ctx)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "tracin.parquet"
                write_parquet(path, pd.DataFrame({"sample_id": prepared.split("train").ids, **cols}))
                print(f"shards {shards}: bytes identical to {target}: {path.read_bytes() == committed}")

    # the parts of one checkpoint, in this process
    model = ctx.model.cpu()
    model.load_state_dict(ck[-1].state)
    model.eval()
    with full_float32():
        g, tg = best_of(lambda: summed_gradient(model, ctx.loss_fn, *streamable(ctx.val), batch_size=bs))
    _, td = best_of(lambda: directional_derivatives(model, ctx.loss_fn, g, *streamable(ctx.train), batch_size=bs, method=method))
    print(f"\none checkpoint: validation gradient {tg:.3f} s ({n_val} samples), training directional derivatives {td:.3f} s "
          f"({n_train} samples): the gradient is {tg / (tg + td):.0%} of a checkpoint")
    shared = ShardInputs(ctx.model.cpu(), ctx.loss_fn, list(ck), streamable(ctx.train), streamable(ctx.val), bs, method)
    blob, tp = timed(lambda: pickle.dumps(shared, protocol=pickle.HIGHEST_PROTOCOL))
    _, tu = timed(lambda: pickle.loads(blob))
    from sampleval.training.checkpoints import list_checkpoints

    _, tl = timed(lambda: load_checkpoints(list_checkpoints(root / paths.CHECKPOINTS)))
    ck_bytes = sum(p.stat().st_size for p in list_checkpoints(root / paths.CHECKPOINTS))
    print(f"shared object in memory: {len(blob) / 1e6:.2f} MB pickled, dumps {tp * 1e3:.1f} ms + loads {tu * 1e3:.1f} ms; "
          f"loading the {len(ck)} checkpoints from their paths instead: {tl * 1e3:.1f} ms ({ck_bytes / 1e6:.2f} MB on disk, with optimiser states)")

    # float32 rounding: the same batches with another reduction order (2 torch threads), a
    # stand-in for another device, where bitwise equality is not to be expected
    torch.set_num_threads(2)
    other = tracin_scores(ctx.model, ctx.loss_fn, ck, ctx.train, ctx.val, bs, progress=False, method=method)
    torch.set_num_threads(params.train.cpu_threads)
    rel = max(np.abs(other[k] - whole[k]).max() / np.abs(whole[k]).max() for k in whole)
    print(f"float32 rounding: 2 torch threads instead of {params.train.cpu_threads}: bitwise equal {same(other, whole)}, "
          f"largest difference {rel:.2e} of the column's largest |score|")

    # --- part 2: executor overhead ---------------------------------------------------------
    print("\n## executor overhead, 2 workers (wall seconds)")
    cfg1 = replace(cfg, epochs=1)
    serial4, ts4 = timed(lambda: run_jobs(one_epoch_job, [0, 1, 2, 3], Compute(workers=1), shared=(prepared, cfg1)))
    print(f"one-epoch training job, 4 jobs in this process: {ts4:.2f} s ({ts4 / 4:.2f} s per job)")
    print("| backend | start-up | 2 empty jobs | 50 empty jobs | marginal s per empty job | 4 one-epoch jobs | speed-up vs in process | same results |")
    print("|---|---|---|---|---|---|---|---|")
    rows = [("local (a new pool per call: start-up included)", local2, None)]
    ray = None
    if not args.skip_ray:
        try:
            import ray
        except ImportError:
            print("ray not importable: skipped")
    for name, compute, startup in rows:
        _, e2 = timed(lambda: run_jobs(empty_job, [0, 1], compute))
        _, e50 = timed(lambda: run_jobs(empty_job, list(range(50)), compute))
        res4, w4 = timed(lambda: run_jobs(one_epoch_job, [0, 1, 2, 3], compute, shared=(prepared, cfg1)))
        print(f"| {name} | (in each call) | {e2:.2f} | {e50:.2f} | {(e50 - e2) / 48:.3f} | {w4:.2f} | {ts4 / w4:.2f}x | {res4 == serial4} |")
    if ray is not None:
        from sampleval.runtime.compute import ray_session

        ray_compute = replace(local2, backend="ray")
        _, t_up = timed(lambda: ray_session(ray_compute))  # a private 2-CPU instance, kept for the calls below
        try:
            _, first = timed(lambda: run_jobs(empty_job, [0, 1], ray_compute))  # Ray starts its worker processes on first use
            t_up = f"{t_up:.2f} + {first:.2f} (instance + first call: its worker processes)"
            _, e2 = timed(lambda: run_jobs(empty_job, [0, 1], ray_compute))
            _, e50 = timed(lambda: run_jobs(empty_job, list(range(50)), ray_compute))
            res4, w4 = timed(lambda: run_jobs(one_epoch_job, [0, 1, 2, 3], ray_compute, shared=(prepared, cfg1)))
            print(f"| ray (a private instance started once, then warm) | {t_up} | {e2:.2f} | {e50:.2f} | {(e50 - e2) / 48:.3f} | {w4:.2f} | {ts4 / w4:.2f}x | {res4 == serial4} |")
            sh_ray, tr = best_of(lambda: sharded_scores("tracin", ctx.model, ctx.loss_fn, ck, ctx.train, ctx.val, bs, 2, ray_compute, method))
            print(f"\ntracin, 2 shards on the warm ray instance: {tr:.2f} s ({t1 / tr:.2f}x the unsharded), bitwise equal: {same(sh_ray, whole)}")
        finally:
            ray.shutdown()

if __name__ == "__main__":
    main()
