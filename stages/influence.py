"""influence: one estimator over the saved checkpoints -> data/influence/methods/<method>.parquet
and its diagnostics (solver, iterations, residual, curvature, fallback, damping, checkpoints
used) -> data/influence/methods/<method>.json, which the scores stage merges into
metrics/influence.json.

One DVC stage per estimator (a matrix over influence.methods), so that adding an
estimator computes only the new one. The streaming estimators (tracin, self_influence)
run on train.device (auto: CUDA when available); the others on the CPU. Those two split the
training set into influence.shards shards, one job each on the compute backend
(sampleval.compute: local processes or Ray tasks); the scores do not depend on it.
"""
from __future__ import annotations

import argparse

import pandas as pd

from sampleval.compute import Compute
from sampleval.data.prepared import load_prepared
from sampleval.influence import make_context, run_estimator
from sampleval.influence.tracin import resolve_shards
from sampleval.io import write_json, write_parquet
from sampleval.training import TrainConfig, pick_device
from stages import paths
from stages._common import log, main, start


@main
def run(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", required=True)
    args = ap.parse_args(argv)
    params = start(f"influence:{args.method}", baseline=True)
    inf = params["influence"]
    prepared = load_prepared(paths.PREPARED)
    cfg = TrainConfig.from_params(params)
    ctx = make_context(
        prepared, cfg, paths.CHECKPOINTS, paths.MODEL, inf["batch_size"], inf["damping"], inf["cg_iterations"], params["seed"],
        inf["tracin_method"], pick_device(cfg.device), options=inf["options"],
    )
    ctx.compute = Compute.from_params(params)
    ctx.shards = resolve_shards(inf["shards"], ctx.compute)
    columns = run_estimator(args.method, ctx)
    df = pd.DataFrame({"sample_id": prepared.split("train").ids, **columns})
    write_parquet(paths.method_scores(args.method), df)
    write_json(paths.method_diagnostics(args.method), ctx.diagnostics.get(args.method, {}), ndigits=None)
    log.info("%s: %d scores, range [%.4g, %.4g]", args.method, len(df), df[args.method].min(), df[args.method].max())


if __name__ == "__main__":
    run()
