"""shapes-index: seed 003's S-shapedness index of the TracIn score distribution.

Per misclassified validation sample (the paper's unit, on validation instead of test):
the TracIn scores of every training sample for that one sample, over the checkpoints of
the ``tracin`` estimator; and on every aggregate score column of scores.parquet. Writes
metrics/shapes.json (definition: :mod:`sampleval.influence.s_shapedness`)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from sampleval.influence import s_shapedness as shapes
from sampleval.data.prepared import load_prepared
from sampleval.influence.context import Baseline
from sampleval.io import write_json
from sampleval.training.loop import TrainConfig, make_loss, target_tensor
from stages._common import log, main, start
from stages.paths import CHECKPOINTS, MODEL, PREPARED, SCORES, SHAPES_METRICS


@main
def run(argv=None) -> None:
    params = start("shapes-index")
    prepared = load_prepared(PREPARED)
    tr, va = prepared.split("train"), prepared.split("val")
    cfg = TrainConfig.from_params(params)
    methods = params.influence.methods
    table = pd.read_parquet(SCORES)
    columns = {m: table[m].to_numpy(float) for m in methods if m in table}
    per_val, ids = np.zeros((0, len(tr.x))), []
    if prepared.task == "multiclass":
        baseline = Baseline.load(prepared, cfg, CHECKPOINTS, MODEL)
        model = baseline.selected_model()
        wrong = shapes.misclassified(model, va.x, va.y)
        loss_fn = make_loss(prepared.task, cfg, tr.y)
        per_val = shapes.per_sample_tracin(model, loss_fn, baseline.checkpoints,
                                           (tr.x, target_tensor(tr.y, prepared.task)), (va.x, target_tensor(va.y, prepared.task)), wrong,
                                           batch_size=params.influence.batch_size, method=params.influence.tracin_method)
        ids = list(va.ids[wrong])
    flipped = table["flipped"].to_numpy(bool) if "flipped" in table else None
    out = shapes.aggregate_and_per_sample(columns, per_val, ids, flipped)
    write_json(SHAPES_METRICS, out)
    log.info("S-shapedness (larger = more S-shaped): aggregate tracin %s; %d misclassified validation samples: %s",
             out["aggregate"].get("tracin"), len(ids), out["per_misclassified_val"]["summary"])


if __name__ == "__main__":
    run()
