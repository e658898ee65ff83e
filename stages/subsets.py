"""subsets: every cell of the subset experiment (ranking x variant x strategy x fraction, the
random controls shared by every ranking, and each global cell's class-matched control): retrain
from scratch on the chosen subset for every seed in subsets.seeds -> one record per cell at
metrics/subsets/<ranking>/<variant>/<strategy>-<fraction>.json (sampleval.experiments.subset_cells).

Every (subset, seed) retraining is a job of the executor (compute params), and finished
retrainings are kept in the job cache (data/jobs/subsets): adding a ranking, a variant or a
fraction trains only the new cells' subsets.
"""
from __future__ import annotations

import pandas as pd

from sampleval.experiments.subset_cells import planned_cells
from sampleval.runtime.compute import Compute, JobCache
from sampleval.data.prepared import load_prepared
from sampleval.runtime.fingerprints import recipe_fingerprint
from sampleval.experiments.subset_runs import json_record, run_subset_cells
from sampleval.io import write_json
from sampleval.experiments.subsets import RANDOM
from sampleval.training.loop import TrainConfig
from stages._common import log, main, start
from stages.paths import PREPARED, SUBSETS, job_cache, method_scores


@main
def run(argv=None) -> None:
    params = start("subsets", baseline=True)
    sub = params.subsets
    prepared = load_prepared(PREPARED)
    cfg = TrainConfig.from_params(params)
    cells = planned_cells(sub)
    # each ranking's own file: an estimator that no cell ranks by is never read
    scores = {r: pd.read_parquet(method_scores(r), columns=["sample_id", r]) for r in dict.fromkeys(c.ranking for c in cells) if r != RANDOM}
    cache = JobCache(job_cache("subsets"), recipe_fingerprint(prepared, cfg)) if params.compute.job_cache else None
    records = run_subset_cells(prepared, cfg, cells, sub.seeds, scores, Compute.from_params(params), cache)
    for key, record in records.items():
        write_json(str(key.path(SUBSETS)), json_record(record), ndigits=None)  # unrounded: stats tests exact values
        log.info("%s: mean test %s", key.name, {k: round(v, 4) for k, v in record["mean"].items()})


if __name__ == "__main__":
    run()
