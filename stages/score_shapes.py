"""score-shapes: score shapes over the detection sweep -> metrics/score_shapes.json, plots/score_shapes_*.{csv,png}.

Reads every ``data/detect/<cell>.parquet`` (schema: sample_id, label, clean_label, flipped,
one float suspicion column per ranking) and, where present,
``metrics/detection/cells/<cell>.json`` for each cell's test accuracy and loss; the training
images (the isolation analysis) are the cells' own clean digits, prepared in a temporary folder
(:func:`sampleval.detection.recipe.clean_digits`), not data/prepared: a ``remove`` row of
data/corrections.csv drops samples from data/prepared that the sweep's cells still hold.
See sampleval/detection/score_shapes.py.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from sampleval.detection import score_shapes as sh
from sampleval.config import Params
from sampleval.detection.recipe import CellRecipe, clean_digits
from sampleval.io import atomic_path, write_json
from stages._common import log, main, start
from stages.paths import DETECT_CELLS, DETECT_RECORDS, SCORE_SHAPES_METRICS, plot

CELLS = Path(DETECT_CELLS)
RECORDS = Path(DETECT_RECORDS)


def _csv(df: pd.DataFrame, path: str) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def sweep_training_images(params: Params) -> dict:
    """``sample_id -> image`` of the sweep's training split: the digits every cell is built from
    (:class:`sampleval.detection.recipe.CellRecipe`), without noise or corrections."""
    with tempfile.TemporaryDirectory() as tmp:
        tr = clean_digits(CellRecipe.of(params), Path(tmp)).split("train")
        return dict(zip(tr.ids, np.array(tr.x)))


@main
def run(argv=None) -> None:
    params = start("shapes")
    s = params.shapes
    # the cells detect's params name (<setting>-s<seed>): a cell dropped from the sweep is not read
    paths = [CELLS / f"{setting}-s{seed}.parquet" for setting in params.detect.run for seed in params.detect.seeds]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"detection cell {missing[0]} is missing; run `dvc repro detect` first")
    cells = {p.stem: pd.read_parquet(p) for p in paths}
    records = {p.stem: json.loads((RECORDS / f"{p.stem}.json").read_text()) for p in paths if (RECORDS / f"{p.stem}.json").exists()}
    images = sweep_training_images(params)
    metrics, curves, bands, perf = sh.analyse(cells, s.ranking, images, s.knn, records)
    write_json(SCORE_SHAPES_METRICS, metrics)
    _csv(curves, plot("score_shapes_sorted.csv"))
    _csv(bands, plot("score_shapes_bands.csv"))
    _csv(perf, plot("score_shapes_threshold.csv"))
    sh.shapes_plot(curves, metrics, plot("score_shapes_sorted.png"))
    sh.threshold_plot(perf, bands, plot("score_shapes_threshold.png"))
    if metrics["missing_performance"]:
        log.info("no test accuracy/loss recorded for cell(s) %s: the threshold plot lacks them", ", ".join(metrics["missing_performance"]))
    for name, m in metrics["cells"].items():
        log.info("%s (%s, %.1f%% flipped): flips %.0f%% from centre, S-shapedness %s", name, m["noise"], 100 * m["flip_ratio"],
                 m["flipped_position_from_centre_pct"], m["s_shapedness"])


if __name__ == "__main__":
    run()
