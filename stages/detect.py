"""detect@<setting>-<seed>: one cell of the label-error detection sweep.

Noise setting and seed -> data/detect/<setting>-s<seed>.parquet (one suspicion column per
ranking) and metrics/detection/cells/<setting>-s<seed>.json (see sampleval.detection).
"""
from __future__ import annotations

import argparse

from sampleval.detection import NoiseSetting, cell_name, run_cell
from sampleval.io import write_json, write_parquet
from stages._common import log, main, start
from stages.paths import detect_cell_record, detect_cell_table



@main
def run(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--setting", required=True)
    ap.add_argument("--seed", type=int, required=True)
    args = ap.parse_args(argv)
    params = start(f"detect:{args.setting}-s{args.seed}")
    det = params["detect"]
    if args.setting not in det["settings"]:
        raise ValueError(f"detect setting {args.setting!r} is not in 'detect.settings' ({', '.join(det['settings'])})")
    setting = NoiseSetting.from_params(args.setting, det["settings"][args.setting])
    table, record = run_cell(params, setting, args.seed, det["rankings"], det["combinations"], det["cleanlab_folds"])
    cell = cell_name(args.setting, args.seed)
    write_parquet(detect_cell_table(cell), table)
    write_json(detect_cell_record(cell), record)
    r = record["rankings"]
    log.info("%s: %d flips of %d; AUROC %s", cell, record["n_flipped"], record["n_train"], ", ".join(f"{k} {v['auroc']:.3f}" for k, v in r.items() if v))


if __name__ == "__main__":
    run()
