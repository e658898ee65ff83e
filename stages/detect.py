"""detect: every cell (setting in detect.run x seed in detect.seeds) of the label-error
detection sweep, run as executor jobs (compute.*; sampleval.detection.sweep).

Each cell -> data/detect/<setting>-s<seed>.parquet (one suspicion column per ranking) and
metrics/detection/cells/<setting>-s<seed>.json (see sampleval.detection). With
compute.job_cache, finished cells are kept in data/jobs/detect (gitignored), keyed by
everything a cell depends on: adding a setting or a seed computes only the new cells.
"""
from __future__ import annotations

import time

from sampleval.runtime.compute import Compute
from sampleval.detection.sweep import run_sweep
from sampleval.io import write_json, write_parquet
from stages._common import log, main, start
from stages.paths import detect_cell_record, detect_cell_table, job_cache


@main
def run(argv=None) -> None:
    params = start("detect")
    det = params.detect
    if params.data.source != "digits":
        log.info("the detection sweep is a benchmark on the embedded digits with each setting's injected noise "
                 "(detect.settings), not on data.source %s; its numbers say which ranking to trust, not where your "
                 "labels are wrong", params.data.source)
    compute = Compute.from_params(params)
    t0 = time.perf_counter()
    cells = run_sweep(params, det.run, det.seeds, compute, cache_root=job_cache("detect") if params.compute.job_cache else None)
    for cell, table, record in cells:
        write_parquet(detect_cell_table(cell), table)
        write_json(detect_cell_record(cell), record)
        r = record["rankings"]
        log.info("%s: %d flips of %d; AUROC %s", cell, record["n_flipped"], record["n_train"], ", ".join(f"{k} {v['auroc']:.3f}" for k, v in r.items() if v))
    log.info("detect: %d cells in %.1f s (%s, %d workers)", len(cells), time.perf_counter() - t0, compute.backend, compute.workers)


if __name__ == "__main__":
    run()
