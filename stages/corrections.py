"""corrections: what the reviewer's corrections (data/corrections.csv, applied by prepare) are
worth -> metrics/corrections.json: retrain with every corrections.seeds on the data before the
corrections, after them, and a random control of the same size, and compare with the exact
paired test (sampleval.data.corrections). A file without relabel/remove rows trains nothing."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from sampleval.runtime.compute import Compute, JobCache
from sampleval.experiments.correction_runs import compare_corrections
from sampleval.data.corrections import APPLIED, uncorrected_table
from sampleval.data.prepared import Prepared, load_prepared
from sampleval.runtime.fingerprints import recipe_fingerprint
from sampleval.io import write_json
from sampleval.training.loop import TrainConfig
from stages import paths
from stages._common import log, main, start


@main
def run(argv=None) -> None:
    params = start("corrections", baseline=True)
    prepared = load_prepared(paths.PREPARED)
    applied = pd.read_parquet(Path(paths.PREPARED) / APPLIED)
    before = Prepared(prepared.images, uncorrected_table(prepared.table, applied), prepared.task, prepared.classes)
    cfg = TrainConfig.from_params(params)
    cache = JobCache(paths.job_cache("corrections"), recipe_fingerprint(before, cfg)) if params.compute.job_cache else None
    stats = params.stats
    record = compare_corrections(before, applied, cfg, params.corrections.seeds, stats.metric, stats.alpha, stats.n_bootstrap,
                                 Compute.from_params(params), cache)
    write_json(paths.CORRECTIONS_METRICS, record)
    if record["n_corrections"]:
        t = record["corrected_vs_random"]
        log.info("corrections (%d): mean %s corrected %.4f, random %.4f, before %.4f; corrected vs random p = %.4g (min attainable %.4g)",
                 record["n_corrections"], record["metric"], record["mean"]["corrected"], record["mean"]["random"], record["mean"]["before"],
                 t["p"], t["min_attainable_p"])
    else:
        log.info(record["note"])


if __name__ == "__main__":
    run()
