"""figures: figures drawn only from other stages' committed outputs (no training, no torch).

- ``plots/fidelity.png`` and ``plots/fidelity_lds.csv``: the LDS and the leave-one-out
  Spearman per estimator with their bootstrap CIs, from ``metrics/fidelity.json``. The
  fidelity stage (dozens of retrainings) writes only numbers, so editing
  ``sampleval/reporting/figures.py`` reruns this stage and not the retrainings.
- ``plots/detection_curves.csv`` (panel = setting, group = ranking, inspected, found): the
  sweep's detection curves of ``plots/detection/curves-<setting>.csv`` (first 30 % inspected) in long form, which the
  custom template ``.dvc/plots/lines_by_group_panels.json`` draws as one line per ranking and
  one panel per setting, whatever ``detect.rankings`` and ``detect.run`` hold.
- ``plots/refine_rounds.csv`` (group = arm, round, test accuracy...): refinement per round,
  mean over seeds, one line per arm (refined, random) with ``.dvc/plots/lines_by_group.json``.
- ``plots/subsets_cells.csv``: the mean test metric per subset cell (``metrics/subsets``).

Each file is data for a top-level ``plots:`` definition in dvc.yaml.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sampleval.reporting import figures
from sampleval.experiments.subset_cells import load_cells
from sampleval.io import atomic_path
from stages._common import log, main, start
from stages.paths import (DETECTION_CURVES, DETECTION_PLOTS, FIDELITY_LDS_CSV, FIDELITY_METRICS, FIDELITY_PLOT, REFINE_CSV, REFINE_ROUNDS,
                          SUBSETS, SUBSETS_CELLS_CSV)


def _csv(df: pd.DataFrame, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


@main
def run(argv=None) -> None:
    params = start("figures", torch=False)
    table = figures.fidelity_table(json.loads(Path(FIDELITY_METRICS).read_text()))
    _csv(table, FIDELITY_LDS_CSV)
    figures.fidelity_plot(table, FIDELITY_PLOT)
    curves = figures.detection_curves_long({s: pd.read_csv(f"{DETECTION_PLOTS}/curves-{s}.csv") for s in params.detect.run})  # named by params, never globbed
    _csv(curves, DETECTION_CURVES)
    _csv(figures.refine_rounds(pd.read_csv(REFINE_CSV)), REFINE_ROUNDS)
    cells = figures.subsets_table(load_cells(params.subsets, SUBSETS), params.stats.metric)
    _csv(figures.subsets_cells(cells), SUBSETS_CELLS_CSV)
    log.info("wrote %s (%d estimators), %s, %s, %s", FIDELITY_PLOT, len(table), DETECTION_CURVES, REFINE_ROUNDS, SUBSETS_CELLS_CSV)


if __name__ == "__main__":
    run()
