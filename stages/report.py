"""report: figures (plots/*.png), their data (plots/*.csv, for `dvc plots`), report.md,
report.html (the same, self-contained) and metrics/headline.json. The last stage of
`dvc repro`: it ends by logging where the report is."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sampleval.reporting import figures
from sampleval.experiments.subset_cells import load_cells
from sampleval.io import atomic_path, write_json, write_text
from sampleval.reporting.label_issues import suspects_summary
from sampleval.reporting.headline import headline
from sampleval.reporting.report import render_html, render_report
from sampleval.reporting.report_inputs import FIGURES, ReportInputs
from stages._common import log, main, start
from stages.paths import CORRECTIONS_METRICS, LABEL_ISSUES
from stages.paths import (DETECT_RECORDS, DETECTION, FIDELITY_METRICS, HEADLINE, INFLUENCE_METRICS, REFINE_METRICS, REPORT, REPORT_HTML, SCORES,
                          STATS_METRICS, SUBSETS, TRAIN_CURVE, TRAIN_METRICS, plot)


def _csv(df: pd.DataFrame, path: str) -> None:
    with atomic_path(path) as tmp:
        df.round(6).to_csv(tmp, index=False)


def _json(path: str) -> dict:
    return json.loads(Path(path).read_text())


@main
def run(argv=None) -> None:
    params = start("report", torch=False)
    sub, metric = params.subsets, params.stats.metric
    score_col = sub.scores[0]  # the histogram and sorted-score figures show the first ranking
    table = pd.read_parquet(SCORES)
    inputs = ReportInputs(
        train=_json(TRAIN_METRICS), influence=_json(INFLUENCE_METRICS), stats=_json(STATS_METRICS),
        params=params, fidelity=_json(FIDELITY_METRICS), cells=load_cells(sub, SUBSETS),
        extra={"detection": _json(f"{DETECTION}/summary.json"), "refine": _json(REFINE_METRICS),
               "detection_cells": [_json(str(p)) for p in sorted(Path(DETECT_RECORDS).glob("*.json"))]},
    )
    inputs.extra.update(corrections=_json(CORRECTIONS_METRICS), suspects=suspects_summary(pd.read_parquet(LABEL_ISSUES), params.suspects.top_k))

    figures.train_curve_plot(pd.read_csv(TRAIN_CURVE), inputs.train["best_epoch"], plot("train_curve.png"))
    figures.influence_histogram(table, score_col, plot("influence_hist.png"))
    ordered = figures.sorted_scores(table, score_col)
    _csv(ordered, plot("sorted_scores.csv"))
    figures.sorted_scores_plot(ordered, score_col, inputs.influence[score_col]["s_shapedness"], plot("sorted_scores.png"))
    det = figures.detection_table(table, params.influence.methods)  # all zeros when nothing was flipped
    _csv(det, plot("detection.csv"))
    figures.detection_plot(det, plot("detection.png"))
    subsets = figures.subsets_table(inputs.cells, metric)
    _csv(subsets, plot("subsets.csv"))
    figures.subsets_plot(subsets, metric, inputs.train["test"][metric], plot("subsets.png"))
    comp = figures.composition_table(inputs.cells)
    _csv(comp, plot("composition.csv"))
    figures.composition_heatmap(comp, plot("composition.png"))
    write_json(HEADLINE, headline(inputs))
    inputs.figures = frozenset(f for figs in FIGURES.values() for f in figs if Path(f).is_file())
    text = render_report(inputs)
    write_text(REPORT, text)
    write_text(REPORT_HTML, render_html(text))
    log.info("report: %s (figures linked), %s (self-contained, open in a browser); headline numbers: %s",
             Path(REPORT).resolve(), Path(REPORT_HTML).resolve(), HEADLINE)


if __name__ == "__main__":
    run()
