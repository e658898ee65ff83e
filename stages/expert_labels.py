"""expert_labels: detection of NIH label errors against Google's 2019 expert relabels.

A documented command, not a DVC stage (it needs NIH images and the relabel file, which the
default digits run has neither of):

    python -m stages.expert_labels --expert data/raw/nih14/google2019_nih-chest-xray-labels.csv.gz

Needs ``data.source: nih14`` and the outputs of ``dvc repro train``. Scores every prepared
sample that has an expert label with the label-wise suspicion of the four expert findings
(NIH labels grouped as in sampleval/data/expert_labels.py) under the trained model, and writes
metrics/expert_labels.json: per split of ours (train/val/test) and view (all/PA), per
finding, AUROC / AP / share found in the top 1-20 % for expert disagreement.
In-sample scores on the training split are the weakest (the model fit those labels); the
val/test rows are scored by a model that never saw them.
"""
from __future__ import annotations

import argparse

import numpy as np

from sampleval.data import expert_labels as ex
from sampleval.data.prepared import load_prepared
from sampleval.io import write_json
from sampleval.training.metrics import sigmoid
from sampleval.detection.multilabel import label_wise_suspicion
from sampleval.influence.context import load_selected_model
from sampleval.training.loop import TrainConfig, predict_logits
from stages._common import log, main, start
from stages.paths import EXPERT_METRICS, MODEL, PREPARED


@main
def run(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--expert", required=True, help="google2019_nih-chest-xray-labels.csv(.gz)")
    ap.add_argument("--out", default=EXPERT_METRICS)
    args = ap.parse_args(argv)
    params = start("expert_labels")
    if params.data.source != "nih14":
        raise ValueError(f"expert labels need data.source: nih14 (now {params.data.source}); they relabel NIH ChestX-ray14 images")
    experts = ex.read_expert_labels(args.expert)
    prepared = load_prepared(PREPARED)
    cfg = TrainConfig.from_params(params)
    model = load_selected_model(prepared, cfg, MODEL)
    out: dict = {"mapping": {f: list(m) for f, m in ex.EXPERT_TO_NIH.items()}, "n_expert_rows": int(len(experts))}
    for split in ("train", "val", "test"):
        s = prepared.split(split)
        joined = ex.join_expert_labels(s.ids, s.y, prepared.classes, experts)
        out[split] = {"n_matched": int(len(joined))}
        if len(joined) == 0:
            continue
        probs = sigmoid(predict_logits(model, s.x[joined["position"].to_numpy()]).astype(np.float64))
        group_p = ex.nih_group_probs(probs, prepared.classes)
        group_y = joined[[f"nih:{f}" for f in ex.EXPERT_TO_NIH]].to_numpy()
        out[split].update(ex.evaluate_against_experts(joined, label_wise_suspicion(group_p, group_y)))
        log.info("%s: %d images with expert labels", split, len(joined))
    write_json(args.out, out)


if __name__ == "__main__":
    run()
