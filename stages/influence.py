"""influence: one estimator over the saved checkpoints -> data/influence/methods/<method>.parquet.

One DVC stage per estimator (a matrix over influence.methods), so that adding an
estimator computes only the new one.
"""
from __future__ import annotations

import argparse

import pandas as pd

from sampleval.data.prepared import load_prepared
from sampleval.influence import InfluenceContext, run_estimator
from sampleval.influence.tracin import as_inputs, load_checkpoints
from sampleval.io import write_parquet
from sampleval.models import build_model
from sampleval.training import TrainConfig, list_checkpoints, load_checkpoint, make_loss
from stages._common import log, main, start


@main
def run(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", required=True)
    args = ap.parse_args(argv)
    params = start(f"influence:{args.method}")
    inf = params["influence"]
    prepared = load_prepared("data/prepared")
    tr, va = prepared.split("train"), prepared.split("val")
    cfg = TrainConfig.from_params(params)
    model = build_model(cfg.model, tr.x.shape[1], prepared.n_classes, tr.x.shape[-1], None)
    ctx = InfluenceContext(
        model=model,
        loss_fn=make_loss(prepared.task, cfg, tr.y),
        checkpoints=load_checkpoints(list_checkpoints("models/checkpoints")),
        final_state=load_checkpoint("models/model.pt")["model"],
        train=as_inputs(tr.x, tr.y, prepared.task),
        val=as_inputs(va.x, va.y, prepared.task),
        task=prepared.task,
        n_classes=prepared.n_classes,
        batch_size=inf["batch_size"],
        damping=inf["damping"],
        cg_iterations=inf["cg_iterations"],
        seed=params["seed"],
        extra={"train_images": tr.x, "train_labels": tr.y},
    )
    columns = run_estimator(args.method, ctx)
    df = pd.DataFrame({"sample_id": tr.ids, **columns})
    write_parquet(f"data/influence/methods/{args.method}.parquet", df)
    log.info("%s: %d scores, range [%.4g, %.4g]", args.method, len(df), df[args.method].min(), df[args.method].max())


if __name__ == "__main__":
    run()
