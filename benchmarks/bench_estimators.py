"""Influence time over training time, per estimator, on the default recipe (digits, SmallCNN).

    python benchmarks/bench_estimators.py [--epochs 10] [--threads 1] [--repeats 5]

Trains the default model with a checkpoint per epoch, then runs every registered
estimator on those checkpoints and prints its time over the training time: the
pipeline's influence cost relative to one training run, with as many checkpoints as
epochs. Same process, same thread count, so the ratios compare. Data are streamed from
uint8 images, as in the pipeline.

The whole default run takes about half a second on 2 cores, so single timings swing by
a third with the machine's state; the training run and our fast TracIn (both methods)
are therefore repeated (``--repeats``, alternating) and reported as medians, with the
ratio of medians and the range of the per-repeat ratios. The other estimators are
timed once.
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch

from sampleval.data.digits import load_digits_source
from sampleval.data.noise import inject_noise
from sampleval.data.splits import stratified_split
from sampleval.influence.context import InfluenceContext
from sampleval.influence.registry import ESTIMATORS
from sampleval.influence.runner import run_estimator
from sampleval.influence.core import Samples, load_checkpoints
from sampleval.influence.tracin import tracin_scores
from sampleval.training.loop import TrainConfig, list_checkpoints, train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    images, table, classes = load_digits_source()
    y = table["label"].to_numpy()
    split = stratified_split(y, 0.15, 0.2, 0)
    noisy, _ = inject_noise(y, split == "train", "pairwise", 0.4, 10, [[9, 4]], np.random.default_rng(0))
    tr, va = split == "train", split == "val"
    cfg = TrainConfig(epochs=args.epochs)
    train_s, val_s = Samples(images[tr], noisy[tr], "multiclass"), Samples(images[va], noisy[va], "multiclass")
    with tempfile.TemporaryDirectory() as ckpt_dir:
        train(images[tr][:64], noisy[tr][:64], images[va], noisy[va], "multiclass", 10, TrainConfig(epochs=1), seed=0)  # warm-up
        times: dict[str, list[float]] = {"training": [], "central": [], "jvp": []}
        for _ in range(args.repeats):  # same seed: every repeat writes the same checkpoints
            res, t = _timed(lambda: train(images[tr], noisy[tr], images[va], noisy[va], "multiclass", 10, cfg, seed=0, ckpt_dir=ckpt_dir))
            times["training"].append(t)
            checkpoints = load_checkpoints(list_checkpoints(ckpt_dir))
            for method in ("central", "jvp"):  # our fast TracIn with each directional-derivative method
                _, t = _timed(lambda: tracin_scores(res.model, res.loss_fn, checkpoints, train_s, val_s, progress=False, method=method))
                times[method].append(t)
        t_train = statistics.median(times["training"])
        base = dict(
            model=res.model, loss_fn=res.loss_fn, checkpoints=checkpoints, final_state=res.best_state, train=train_s, val=val_s,
            task="multiclass", n_classes=10, damping=0.1, cg_iterations=100, seed=0,
        )
        print(f"# bench_estimators {datetime.date.today()} | torch {torch.__version__} | {args.threads} thread(s) | "
              f"digits n_train={int(tr.sum())} n_val={int(va.sum())} | SmallCNN {args.epochs} epochs = {args.epochs} checkpoints")
        print(f"training (all epochs, checkpoints saved): median {t_train:.3f} s over {args.repeats} runs "
              f"(range {min(times['training']):.3f}-{max(times['training']):.3f})")
        print()
        print("| estimator | time (s) | influence / training | per-repeat ratios (min-max) |")
        print("|---|---|---|---|")
        for method in ("central", "jvp"):
            t = statistics.median(times[method])
            ratios = [a / b for a, b in zip(times[method], times["training"])]
            label = f"tracin ({method}{', the default' if method == 'central' else ''})"
            print(f"| {label} | {t:.3f} (median of {args.repeats}) | {t / t_train:.2f}x | {min(ratios):.2f}-{max(ratios):.2f}x |", flush=True)
        for name in ESTIMATORS:  # each pipeline estimator with all its columns, once
            if name == "tracin":
                continue
            _, t = _timed(lambda: run_estimator(name, InfluenceContext(**base)))
            print(f"| {name} | {t:.2f} | {t / t_train:.2f}x | |", flush=True)


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


if __name__ == "__main__":
    main()
