"""influence: every estimator in influence.methods over the saved checkpoints ->
data/influence/methods/<method>.parquet (scores) and <method>.json (diagnostics: solver,
iterations, residual, curvature, fallback, damping, checkpoints used), which the scores stage
merges into data/influence/scores.parquet and metrics/influence.json.

Each estimator is a job of the executor (compute params: local processes or Ray tasks;
sampleval.influence.runner), and finished estimators are kept in the job cache
(data/jobs/influence): adding an estimator, or changing one estimator's options, computes only
that one. The streaming estimators (tracin, self_influence) run on train.device (auto: CUDA
when available) and split the training set into influence.shards shards; the scores do not
depend on where or in how many pieces they ran.
"""
from __future__ import annotations

import pandas as pd

from sampleval.runtime.compute import Compute, JobCache
from sampleval.data.prepared import load_prepared
from sampleval.influence.runner import Baseline, baseline_fingerprint, run_estimators
from sampleval.influence.settings import InfluenceSettings
from sampleval.influence.tracin import resolve_shards
from sampleval.io import write_json, write_parquet
from sampleval.training.loop import TrainConfig
from stages import paths
from stages._common import log, main, start


@main
def run(argv=None) -> None:
    params = start("influence", baseline=True)
    inf = params.influence
    prepared = load_prepared(paths.PREPARED)
    baseline = Baseline.load(prepared, TrainConfig.from_params(params), paths.CHECKPOINTS, paths.MODEL)
    compute = Compute.from_params(params)
    cached = params.compute.job_cache
    cache = JobCache(paths.job_cache("influence"), baseline_fingerprint(baseline)) if cached else None
    results = run_estimators(baseline, inf.methods, InfluenceSettings.from_params(inf, params.seed), compute, resolve_shards(inf.shards, compute), cache,
                             job_cache_root=paths.JOBS if cached else None)
    ids = prepared.split("train").ids
    for method, result in results.items():
        df = pd.DataFrame({"sample_id": ids, **result.columns})
        write_parquet(paths.method_scores(method), df)
        write_json(paths.method_diagnostics(method), result.diagnostics, ndigits=None)
        log.info("%s: %d scores, range [%.4g, %.4g]", method, len(df), df[method].min(), df[method].max())


if __name__ == "__main__":
    run()
