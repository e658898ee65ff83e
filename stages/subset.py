"""subset: one cell (ranking, variant, strategy, fraction): retrain from scratch on the
chosen subset for every seed in subsets.seeds -> the cell's record at
metrics/subsets/<ranking>/<variant>/<strategy>-<fraction>.json (random controls:
ranking `random`, read no scores, and serve every ranking).

The seeds run inside the cell: each process start costs ~3 s of imports.
"""
from __future__ import annotations

import argparse

import pandas as pd

from sampleval.cells import CellKey
from sampleval.data.prepared import load_prepared
from sampleval.experiment import run_subset_cell
from sampleval.io import write_json
from sampleval.subsets import RANDOM
from sampleval.training import TrainConfig
from stages._common import log, main, start
from stages.paths import PREPARED, SUBSETS, method_scores


@main
def run(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranking", required=True, help="a score column, or 'random' for a control")
    ap.add_argument("--variant", required=True)
    ap.add_argument("--strategy", required=True)
    ap.add_argument("--fraction", type=float, required=True)
    args = ap.parse_args(argv)
    if (args.ranking == RANDOM) != args.strategy.endswith("-random"):
        raise ValueError(f"--ranking {args.ranking} with --strategy {args.strategy}: controls (*-random) take --ranking random, strategies a score column")
    key = CellKey(args.ranking, args.variant, args.strategy, args.fraction)
    params = start(f"subset:{key.name}", baseline=args.ranking != RANDOM)
    prepared = load_prepared(PREPARED)
    scores = None
    if args.ranking != RANDOM:
        # one estimator's own file: adding a ranking or an estimator reruns no other cell
        scores = pd.read_parquet(method_scores(args.ranking), columns=["sample_id", args.ranking])
    result = run_subset_cell(
        prepared, TrainConfig.from_params(params), args.strategy, args.fraction, params["subsets"]["seeds"], args.variant,
        scores, None if args.ranking == RANDOM else args.ranking,
    )
    write_json(str(key.path(SUBSETS)), result)
    log.info("%s: mean test %s", key.name, result["mean"])


if __name__ == "__main__":
    run()
