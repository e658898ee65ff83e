"""report: figures (plots/*.png), their data (plots/*.csv, for `dvc plots`) and report.md."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sampleval import plots
from sampleval.cells import load_cells
from sampleval.io import atomic_path, write_text
from sampleval.report import ReportInputs, render_report
from stages._common import main, start


def _csv(df: pd.DataFrame, path: str) -> None:
    with atomic_path(path) as tmp:
        df.round(6).to_csv(tmp, index=False)


def _json(path: str) -> dict:
    return json.loads(Path(path).read_text())


@main
def run(argv=None) -> None:
    params = start("report")
    sub, metric = params["subsets"], params["stats"]["metric"]
    score_col = sub["scores"][0]  # the histogram and sorted-score figures show the first ranking
    table = pd.read_parquet("data/influence/scores.parquet")
    inputs = ReportInputs(
        train=_json("metrics/train.json"), influence=_json("metrics/influence.json"), stats=_json("metrics/stats.json"),
        params=params, fidelity=_json("metrics/fidelity.json"), cells=load_cells(sub),
        extra={"detection": _json("metrics/detection/summary.json"), "refine": _json("metrics/refine.json")},
    )

    plots.train_curve_plot(pd.read_csv("plots/train_curve.csv"), inputs.train["best_epoch"], "plots/train_curve.png")
    plots.influence_histogram(table, score_col, "plots/influence_hist.png")
    ordered = plots.sorted_scores(table, score_col)
    _csv(ordered, "plots/sorted_scores.csv")
    plots.sorted_scores_plot(ordered, score_col, inputs.influence[score_col]["s_shapedness"], "plots/sorted_scores.png")
    det = plots.detection_table(table, params["influence"]["methods"])  # all zeros when nothing was flipped
    _csv(det, "plots/detection.csv")
    plots.detection_plot(det, "plots/detection.png")
    subsets = plots.subsets_table(inputs.cells, metric)
    _csv(subsets, "plots/subsets.csv")
    plots.subsets_plot(subsets, metric, inputs.train["test"][metric], "plots/subsets.png")
    comp = plots.composition_table(inputs.cells)
    _csv(comp, "plots/composition.csv")
    plots.composition_heatmap(comp, "plots/composition.png")
    write_text("report.md", render_report(inputs))


if __name__ == "__main__":
    run()
