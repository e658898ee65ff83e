"""train: baseline model with one checkpoint per epoch, best epoch chosen on validation.

Writes models/checkpoints/epoch-NNN.pt, models/model.pt, metrics/train.json,
plots/train_curve.csv. ``--resume`` continues from the last complete checkpoint
(outside DVC, e.g. after an interruption of a long GPU run).
"""
from __future__ import annotations

import argparse

import pandas as pd

from sampleval.data.prepared import load_prepared
from sampleval.experiment import train_and_evaluate
from sampleval.io import atomic_path, torch_save, write_json
from sampleval.training import TrainConfig
from stages import paths
from stages._common import log, main, start


@main
def run(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    args = ap.parse_args(argv)
    params = start("train")
    prepared = load_prepared(paths.PREPARED)
    cfg = TrainConfig.from_params(params)
    result, metrics = train_and_evaluate(prepared, cfg, params["seed"], ckpt_dir=paths.CHECKPOINTS, resume=args.resume)
    torch_save(paths.MODEL, {"model": result.best_state, "epoch": result.best_epoch, "config": cfg.__dict__})
    best = next(h for h in result.history if h["epoch"] == result.best_epoch)
    out = {"best_epoch": result.best_epoch, "val": {k: v for k, v in metrics["val"].items()}, "test": metrics["test"]}
    if "thresholds" in metrics:
        out["thresholds"] = metrics["thresholds"]
    out["val"]["loss"] = best["val_loss"]
    write_json(paths.TRAIN_METRICS, out)
    with atomic_path(paths.TRAIN_CURVE) as tmp:
        pd.DataFrame(result.history).round(6).to_csv(tmp, index=False)
    log.info("best epoch %d (val loss %.4f); test %s", result.best_epoch, best["val_loss"], {k: round(v, 4) for k, v in metrics["test"].items() if isinstance(v, float)})


if __name__ == "__main__":
    run()
