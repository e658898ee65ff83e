"""fidelity: how well each estimator predicts what retraining actually does.

Leave-one-out retraining of ``fidelity.n_points`` fixed random training points with
``fidelity.seeds`` (paired by seed), the linear datamodeling score over
``fidelity.n_subsets`` random subsets, the TracIn checkpoint variants, every
correlation with a bootstrap 95 % CI, and the convex control (logistic regression,
exact influence function). Every retraining is scored at the baseline's selected epoch
(``fidelity.epoch: selected``, read from metrics/train.json) or at a fixed epoch.
The work is :func:`sampleval.experiments.fidelity.evaluate`.

Writes metrics/fidelity.json and plots/fidelity.csv; the figure is drawn by the figures stage
(stages/figures.py) from them, so a plotting edit reruns no retraining."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sampleval.experiments import fidelity as fid
from sampleval.runtime.compute import Compute
from sampleval.reporting.fidelity_table import render_table
from sampleval.data.prepared import load_prepared
from sampleval.io import atomic_path, write_json
from sampleval.training.loop import TrainConfig
from stages._common import log, main, start
from stages.paths import FIDELITY_CSV, FIDELITY_METRICS, PREPARED, SCORES, TRAIN_METRICS


@main
def run(argv=None) -> None:
    params = start("fidelity", baseline=True)
    fcfg = params.fidelity
    methods = params.influence.methods
    selected = int(json.loads(Path(TRAIN_METRICS).read_text())["best_epoch"])
    epoch = selected if fcfg.epoch == "selected" else int(fcfg.epoch)
    prepared = load_prepared(PREPARED)
    tr, va = prepared.split("train"), prepared.split("val")
    scores = pd.read_parquet(SCORES)
    setup = fid.Retraining(tr.x, tr.y, va.x, va.y, prepared.task, prepared.n_classes, TrainConfig.from_params(params), epoch=epoch,
                            compute=Compute.from_params(params))
    out, table = fid.evaluate(setup, scores, methods, fcfg, params.seed, selected_epoch=selected, sample_ids=tr.ids,
                              convex_damping=params.influence.damping)
    write_json(FIDELITY_METRICS, out)
    with atomic_path(FIDELITY_CSV) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    log.info("%d retrainings scored at epoch %d\n%s", out["n_retrainings"], epoch, render_table(out))


if __name__ == "__main__":
    run()
