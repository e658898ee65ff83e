"""figures: figures drawn only from other stages' committed outputs (no training, no torch).

- ``plots/fidelity.png`` and ``plots/fidelity_lds.csv``: the LDS and the leave-one-out
  Spearman per estimator with their bootstrap CIs, from ``metrics/fidelity.json``. The
  fidelity stage (dozens of retrainings) writes only numbers, so editing
  ``sampleval/plots.py`` reruns this stage and not the retrainings.
- ``plots/detection_curves/<setting>/<ranking>.csv`` (inspected, found): the sweep's
  detection curves of ``plots/detection/curves-<setting>.csv``, one file per ranking, so that
  ``dvc plots show`` draws one line per ranking whatever ``detect.rankings`` holds.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sampleval import plots
from sampleval.io import atomic_path
from stages._common import log, main, start
from stages.paths import DETECTION_CURVES, DETECTION_PLOTS, FIDELITY_LDS_CSV, FIDELITY_METRICS, FIDELITY_PLOT


def _csv(df: pd.DataFrame, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


@main
def run(argv=None) -> None:
    params = start("figures", torch=False)
    table = plots.fidelity_table(json.loads(Path(FIDELITY_METRICS).read_text()))
    _csv(table, FIDELITY_LDS_CSV)
    plots.fidelity_plot(table, FIDELITY_PLOT)
    n = 0
    for setting in params["detect"]["run"]:  # named by params, never globbed
        wide = pd.read_csv(f"{DETECTION_PLOTS}/curves-{setting}.csv")
        for ranking in wide.columns[1:]:
            _csv(wide[["inspected", ranking]].rename(columns={ranking: "found"}), f"{DETECTION_CURVES}/{setting}/{ranking}.csv")
            n += 1
    log.info("wrote %s (%d estimators) and %d detection curves under %s/", FIDELITY_PLOT, len(table), n, DETECTION_CURVES)


if __name__ == "__main__":
    run()
