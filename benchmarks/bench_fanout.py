"""detect and refine (default params) at compute.workers 1 and 2, back to back, outputs compared.

    OMP_NUM_THREADS=1 python benchmarks/bench_fanout.py [--reference /work/main] [--only detect|refine]

Runs the library as the stages do (stages._common.start: BLAS pinned, torch threads, seeds),
without DVC, no job cache. Prints wall times, the speed-up, whether the two worker counts
gave identical outputs and, with --reference, whether they equal that checkout's stage
outputs (data/detect/*.parquet contents, metrics/refine.json). Needs data/prepared (refine).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from sampleval.experiments import refine as rf  # noqa: E402
from sampleval.influence.settings import InfluenceSettings  # noqa: E402
from sampleval.runtime.compute import Compute  # noqa: E402
from sampleval.data.prepared import load_prepared  # noqa: E402
from sampleval.detection.sweep import run_sweep  # noqa: E402
from sampleval.io import round_floats  # noqa: E402
from sampleval.training.loop import TrainConfig  # noqa: E402
from stages._common import start  # noqa: E402
from stages.paths import PREPARED  # noqa: E402


def compute(params, workers):
    return Compute.from_params(replace(params, compute=replace(params.compute, workers=workers)))


def detect(params, workers):
    det = params.detect
    return run_sweep(params, det.run, det.seeds, compute(params, workers))


def refine(params, workers):
    r = params.refine
    setup = rf.RefineSetup(
        prepared=load_prepared(PREPARED), cfg=TrainConfig.from_params(params), ranking=r.ranking, dcs_score=r.dcs_score,
        rounds=r.rounds, fraction=r.fraction, influence=InfluenceSettings.from_params(params.influence, params.seed),
        heldout_fraction=r.heldout_fraction, split_seed=params.seed,
    )
    table = rf.run(setup, r.seeds, compute(params, workers))
    return table, round_floats(rf.summarize(table, alpha=params.stats.alpha, n_bootstrap=params.stats.n_bootstrap), 4)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", default=None, help="a checkout whose dvc repro outputs to compare with")
    ap.add_argument("--only", choices=["detect", "refine"], default=None)
    args = ap.parse_args()
    params = start("bench-fanout")
    if args.only in (None, "detect"):
        times, out = {}, {}
        for w in (1, 2):
            t0 = time.perf_counter()
            out[w] = detect(params, w)
            times[w] = time.perf_counter() - t0
        same = all(a[0] == b[0] and a[1].equals(b[1]) and a[2] == b[2] for a, b in zip(out[1], out[2]))
        print(f"detect ({len(out[1])} cells): workers 1 {times[1]:.1f} s, workers 2 {times[2]:.1f} s, speed-up {times[1] / times[2]:.2f}x; identical: {same}", flush=True)
        if args.reference:
            ref = Path(args.reference)
            for cell, table, record in out[2]:
                want = pd.read_parquet(ref / f"data/detect/{cell}.parquet")
                got_record = round_floats(record, 4)
                want_record = json.loads((ref / f"metrics/detection/cells/{cell}.json").read_text()) if (ref / f"metrics/detection/cells/{cell}.json").exists() else None
                print(f"  {cell}: parquet contents equal the reference: {table.equals(want)}; record: {got_record == want_record if want_record else 'no reference'}", flush=True)
    if args.only in (None, "refine"):
        times, out = {}, {}
        for w in (1, 2):
            t0 = time.perf_counter()
            out[w] = refine(params, w)
            times[w] = time.perf_counter() - t0
        same = out[1][0].equals(out[2][0]) and json.dumps(out[1][1]) == json.dumps(out[2][1])
        print(f"refine ({len(params.refine.seeds)} seeds): workers 1 {times[1]:.1f} s, workers 2 {times[2]:.1f} s, speed-up {times[1] / times[2]:.2f}x; identical: {same}", flush=True)
        if args.reference:
            want = json.loads((Path(args.reference) / "metrics/refine.json").read_text())
            got = out[2][1]
            print(f"  refine summary equals the reference's: {all(json.dumps(got[k]) == json.dumps(want[k]) for k in ('n_seeds', 'refined', 'random', 'tests'))}", flush=True)


if __name__ == "__main__":
    main()
