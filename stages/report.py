"""report: figures (plots/*.png), their data (plots/*.csv, for `dvc plots`) and report.md."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sampleval import plots
from sampleval.io import atomic_path, write_text
from sampleval.report import render_report
from sampleval.subsets import STRATEGIES, fractions_for
from stages._common import CELL_PATH, main, start


def _csv(df: pd.DataFrame, path: str) -> None:
    with atomic_path(path) as tmp:
        df.round(6).to_csv(tmp, index=False)


@main
def run(argv=None) -> None:
    params = start("report")
    sub, metric = params["subsets"], params["stats"]["metric"]
    score_col = sub["score"]
    table = pd.read_parquet("data/influence/scores.parquet")
    train = json.loads(Path("metrics/train.json").read_text())
    influence = json.loads(Path("metrics/influence.json").read_text())
    stats = json.loads(Path("metrics/stats.json").read_text())
    fidelity = json.loads(Path("metrics/fidelity.json").read_text())

    plots.train_curve_plot(pd.read_csv("plots/train_curve.csv"), train["best_epoch"], "plots/train_curve.png")
    plots.influence_histogram(table, score_col, "plots/influence_hist.png")
    ordered = plots.sorted_scores(table, score_col)
    _csv(ordered, "plots/sorted_scores.csv")
    plots.sorted_scores_plot(ordered, score_col, influence[score_col]["s_shapedness"], "plots/sorted_scores.png")
    det = plots.detection_table(table, params["influence"]["methods"])  # all zeros when nothing was flipped
    _csv(det, "plots/detection.csv")
    plots.detection_plot(det, "plots/detection.png")
    cells = [
        json.loads(Path(CELL_PATH.format(strategy=strategy, fraction=fraction)).read_text())
        for strategy in STRATEGIES
        for fraction in fractions_for(strategy, sub["remove_fractions"], sub["select_fractions"])
    ]
    subsets = plots.subsets_table(cells, metric)
    _csv(subsets, "plots/subsets.csv")
    plots.subsets_plot(subsets, metric, train["test"][metric], "plots/subsets.png")
    write_text("report.md", render_report(train, influence, stats, params, fidelity))


if __name__ == "__main__":
    run()
