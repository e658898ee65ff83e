"""subset: one (strategy, fraction) cell: retrain from scratch on the chosen subset for
every seed in subsets.seeds -> metrics/subsets/<strategy>-<fraction>.json.

The seeds run inside the cell: each process start costs ~3 s of imports, which would
dominate 144 one-seed cells on 2 cores.
"""
from __future__ import annotations

import argparse

import pandas as pd

from sampleval.data.prepared import load_prepared
from sampleval.experiment import run_subset_cell
from sampleval.io import write_json
from sampleval.training import TrainConfig
from stages._common import CELL_PATH, log, main, start


@main
def run(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--strategy", required=True)
    ap.add_argument("--fraction", type=float, required=True)
    args = ap.parse_args(argv)
    params = start(f"subset:{args.strategy}-{args.fraction}", baseline=not args.strategy.endswith("random"))
    sub = params["subsets"]
    prepared = load_prepared("data/prepared")
    scores = None
    if not args.strategy.endswith("random"):
        table = pd.read_parquet("data/influence/scores.parquet", columns=["sample_id", sub["score"]])
        scores = table
    result = run_subset_cell(
        prepared, TrainConfig.from_params(params), args.strategy, args.fraction, sub["seeds"], sub["stratify"], scores, sub["score"]
    )
    write_json(CELL_PATH.format(strategy=args.strategy, fraction=args.fraction), result)
    log.info("%s at %s: mean test %s", args.strategy, args.fraction, result["mean"])


if __name__ == "__main__":
    run()
