"""Influence time over training time, per estimator, on the default recipe (digits, SmallCNN).

    python benchmarks/bench_estimators.py [--epochs 10] [--threads 1]

Trains the default model once with a checkpoint per epoch (timed), then runs every
registered estimator on those checkpoints (each timed; our fast TracIn with both
directional-derivative methods) and prints the ratio to the training time: the
pipeline's influence cost relative to one training run, with as many checkpoints as
epochs. Same process, same thread count, so the ratios compare. Data are streamed from
uint8 images, as in the pipeline.
"""
from __future__ import annotations

import argparse
import datetime
import tempfile
import time
import warnings

import numpy as np
import torch

from sampleval.data.digits import load_digits_source
from sampleval.data.noise import inject_noise
from sampleval.data.splits import stratified_split
from sampleval.influence import REGISTRY, InfluenceContext, run_estimator
from sampleval.influence.tracin import Samples, load_checkpoints, tracin_scores
from sampleval.training import TrainConfig, list_checkpoints, train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    images, table, classes = load_digits_source()
    y = table["label"].to_numpy()
    split = stratified_split(y, 0.15, 0.2, 0)
    noisy, _ = inject_noise(y, split == "train", "pairwise", 0.4, 10, [[9, 4]], np.random.default_rng(0))
    tr, va = split == "train", split == "val"
    cfg = TrainConfig(epochs=args.epochs)
    with tempfile.TemporaryDirectory() as ckpt_dir:
        train(images[tr][:64], noisy[tr][:64], images[va], noisy[va], "multiclass", 10, TrainConfig(epochs=1), seed=0)  # warm-up
        start = time.perf_counter()
        res = train(images[tr], noisy[tr], images[va], noisy[va], "multiclass", 10, cfg, seed=0, ckpt_dir=ckpt_dir)
        t_train = time.perf_counter() - start
        base = dict(
            model=res.model, loss_fn=res.loss_fn, checkpoints=load_checkpoints(list_checkpoints(ckpt_dir)), final_state=res.best_state,
            train=Samples(images[tr], noisy[tr], "multiclass"), val=Samples(images[va], noisy[va], "multiclass"),
            task="multiclass", n_classes=10, damping=0.1, cg_iterations=100, seed=0,
            extra={"train_images": images[tr], "train_labels": noisy[tr]},
        )
        print(f"# bench_estimators {datetime.date.today()} | torch {torch.__version__} | {args.threads} thread(s) | "
              f"digits n_train={int(tr.sum())} n_val={int(va.sum())} | SmallCNN {args.epochs} epochs = {args.epochs} checkpoints")
        print(f"training (all epochs, checkpoints saved): {t_train:.2f} s")
        print()
        print("| estimator | time (s) | influence / training |")
        print("|---|---|---|")
        for method in ("central", "jvp"):  # our fast TracIn with each directional-derivative method
            start = time.perf_counter()
            tracin_scores(base["model"], base["loss_fn"], base["checkpoints"], base["train"], base["val"], progress=False, method=method)
            t = time.perf_counter() - start
            print(f"| tracin ({method}{', the default' if method == 'central' else ''}) | {t:.2f} | {t / t_train:.2f}x |", flush=True)
        for name in REGISTRY:  # each pipeline estimator with all its columns
            if name == "tracin":
                continue
            start = time.perf_counter()
            run_estimator(name, InfluenceContext(**base))
            t = time.perf_counter() - start
            print(f"| {name} | {t:.2f} | {t / t_train:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
