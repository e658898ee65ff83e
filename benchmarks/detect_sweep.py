"""The full label-error detection sweep, outside DVC, in one process (no per-cell imports).

    OMP_NUM_THREADS=1 python benchmarks/detect_sweep.py --out /tmp/detect-full \
        --settings all --seeds 0 1 2 3 \
        --rankings tracin self_influence tracin_last_layer if_diag if_last_layer if_last_layer_miscls loss cleanlab_logreg

Each cell writes <out>/<setting>-s<seed>.parquet and .json (the same files the `detect`
stages write); an existing cell is skipped, so an interrupted sweep resumes. Afterwards
`python benchmarks/detect_sweep.py --out ... --summarise-only` writes the summary
(same library as the `detect-summary` stage) into <out>/summary/.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sampleval.runtime.determinism import configure_torch  # noqa: E402
from sampleval.config import load  # noqa: E402
from sampleval.detection.cell import run_cell  # noqa: E402
from sampleval.detection.recipe import CellRecipe, NoiseSetting, cell_name  # noqa: E402
from sampleval.io import write_json, write_parquet  # noqa: E402


def add_combinations(out: Path, cell: str, combinations: dict) -> None:
    """Add the combinations an existing cell lacks (rank averages of its columns: the same
    numbers run_cell would give), with their metrics."""
    from sampleval.detection.quality import detection_metrics
    from sampleval.detection.rankings import rank_average

    table = pd.read_parquet(out / f"{cell}.parquet")
    missing = {k: v for k, v in combinations.items() if k not in table.columns}
    if not missing:
        return
    record = json.loads((out / f"{cell}.json").read_text())
    cols = {c: table[c].to_numpy() for c in table.columns}
    for name, parts in missing.items():
        table[name] = rank_average(cols, parts)
        record["rankings"][name] = detection_metrics(table["flipped"].to_numpy(bool), table[name].to_numpy())
    write_parquet(out / f"{cell}.parquet", table)
    write_json(out / f"{cell}.json", record)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", required=True)
    ap.add_argument("--settings", nargs="+", default=["all"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--rankings", nargs="+", default=None)
    ap.add_argument("--summarise-only", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="[detect-sweep] %(message)s", stream=sys.stderr)
    for noisy in ("sampleval.influence.tracin", "sampleval.influence.hessian", "sampleval.influence.heuristics"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    configure_torch(1)
    params = load(args.params)
    det = params.detect
    settings = list(det.settings) if args.settings == ["all"] else args.settings
    rankings = args.rankings or det.rankings
    out = Path(args.out)
    if not args.summarise_only:
        recipe = CellRecipe.of(params)
        t_all = time.perf_counter()
        for name in settings:
            for seed in args.seeds:
                cell = cell_name(name, seed)
                if (out / f"{cell}.json").exists():
                    add_combinations(out, cell, det.combinations)
                    continue
                t0 = time.perf_counter()
                table, record = run_cell(recipe, NoiseSetting.from_params(name, det.settings[name]), seed, rankings, det.combinations, det.cleanlab_folds)
                write_parquet(out / f"{cell}.parquet", table)
                write_json(out / f"{cell}.json", record)
                logging.info("%s done in %.1f s (total %.0f s)", cell, time.perf_counter() - t0, time.perf_counter() - t_all)
    from sampleval.detection.summary import pipeline_cell, summarise_to

    summarise_to(out, out / "summary", settings, args.seeds, det, development_seeds=det.development_seeds,
                 target=pipeline_cell(params, settings, args.seeds))


if __name__ == "__main__":
    main()
