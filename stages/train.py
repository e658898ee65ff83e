"""train: baseline model with one checkpoint per epoch, best epoch chosen on validation.

Writes models/checkpoints/epoch-NNN.pt, models/model.pt, metrics/train.json,
plots/train_curve.csv. ``--resume`` continues from the last complete checkpoint
(outside DVC, e.g. after an interruption of a long GPU run).
"""
from __future__ import annotations

import argparse
import time

import pandas as pd

from sampleval.data.prepared import load_prepared
from sampleval.training.retrain import train_and_evaluate
from sampleval.io import atomic_path, torch_save, write_json
from sampleval.training.loop import TrainConfig
from stages import paths
from stages._common import log, main, start


def epoch_logger(epochs: int):
    """The per-epoch progress line of the train stage (``fit``'s ``progress`` callback)."""
    t0 = time.perf_counter()

    def report(record: dict) -> None:
        extra = "".join(f", val {k} {record[f'val_{k}']:.4f}" for k in ("accuracy", "macro_auroc") if isinstance(record.get(f"val_{k}"), float))
        log.info("epoch %d/%d: train loss %.4f, val loss %.4f%s (%.0f s)", record["epoch"], epochs, record["train_loss"],
                 record["val_loss"], extra, time.perf_counter() - t0)

    return report


@main
def run(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    args = ap.parse_args(argv)
    params = start("train")
    prepared = load_prepared(paths.PREPARED)
    cfg = TrainConfig.from_params(params)
    result, metrics = train_and_evaluate(prepared, cfg, params.seed, ckpt_dir=paths.CHECKPOINTS, resume=args.resume,
                                         progress=epoch_logger(cfg.epochs))
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
