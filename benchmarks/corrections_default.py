"""The review loop on the default data, outside DVC: export the top 47 of a suspects table
(data/label_issues.parquet of a default run) as relabel-to-suggested corrections, prepare the
default data with them, and run the corrections stage's comparison (8 seeds, before /
corrected / random control). Writes a JSON record (RESULTS-corrections.md is written from it).

    python benchmarks/corrections_default.py LABEL_ISSUES.parquet OUT.json [--ranking NAME --scores SCORES.parquet]

With --ranking, the table is rebuilt by that ranking from the scores table first (same model probabilities).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from sampleval.config import load
from sampleval.experiments.correction_runs import compare_corrections
from sampleval.data.corrections import APPLIED, uncorrected_table
from sampleval.data.prepared import Prepared, load_prepared
from sampleval.reporting.label_issues import export_corrections, found_in_top
from sampleval.data.prepare import prepare_dataset
from sampleval.training.loop import TrainConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("table")
    ap.add_argument("out")
    ap.add_argument("--top", type=int, default=47)
    ap.add_argument("--ranking")
    ap.add_argument("--scores")
    args = ap.parse_args()
    params = load("params.yaml")
    from sampleval.runtime.determinism import configure_torch

    configure_torch(params.train.cpu_threads)  # as every stage does: 1 thread
    table = pd.read_parquet(args.table)
    if args.ranking:
        from sampleval.reporting.suspects import ranking_suspicion

        scores = pd.read_parquet(args.scores).set_index("sample_id").loc[table["sample_id"]].reset_index()
        table["score"] = ranking_suspicion(scores, args.ranking, params.detect.combinations)
        table["ranking"] = args.ranking
        table = table.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
        table["rank"] = range(1, len(table) + 1)
    with tempfile.TemporaryDirectory() as tmp:
        corr = Path(tmp) / "corrections.csv"
        exported = export_corrections(table, args.top, corr)
        prepare_dataset(params.data, params.noise, params.seed, Path(tmp) / "prepared", corr)
        prep = load_prepared(Path(tmp) / "prepared")
        applied = pd.read_parquet(Path(tmp) / "prepared" / APPLIED)
        before = Prepared(prep.images, uncorrected_table(prep.table, applied), prep.task, prep.classes)
        start = time.perf_counter()
        rec = compare_corrections(before, applied, TrainConfig.from_params(params), params.corrections.seeds,
                                  params.stats.metric, params.stats.alpha, params.stats.n_bootstrap)
        rec["seconds"] = round(time.perf_counter() - start, 1)
    rec["ranking"] = str(table["ranking"].iloc[0])
    rec["top"] = args.top
    rec["found_in_top"] = found_in_top(table, args.top)
    rec["exported_actions"] = exported["action"].value_counts().to_dict()
    Path(args.out).write_text(json.dumps(rec, indent=1))
    print(json.dumps({k: rec[k] for k in ("ranking", "found_in_top", "mean", "seconds")}))


if __name__ == "__main__":
    main()
