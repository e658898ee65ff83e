"""Training and influence throughput (images/s) and an extrapolation of the full NIH study.

    python benchmarks/bench_train.py --model densenet121 --size 224 --batch 32 --n 512
    python benchmarks/bench_train.py --model small_cnn --size 8 --batch 64 --n 2048   # CPU sanity run

Uses the project's own training loop and fast TracIn on synthetic uint8 images (14 labels,
multi-label, the study's loss). On CUDA it uses bf16 autocast and channels_last, as the
NIH preset does. Prints images/s and the extrapolated wall time of the whole study:
baseline training, influence over every checkpoint, and every subset cell over 8 seeds.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import time

import numpy as np
import torch

from sampleval.influence.core import Checkpoint, Samples
from sampleval.influence.tracin import tracin_scores
from sampleval.training.loop import TrainConfig, train

NIH_TRAIN = 78_000  # about 90 % of the official train_val list (86,524 images)
NIH_VAL = 8_500


def study_images(n_train: int, epochs: int, seeds: int, remove=(0.05, 0.15, 0.35, 0.6), select=(0.1, 0.4, 0.8)) -> float:
    """Training images processed by every subset cell: 3 removal strategies (harmful, helpful,
    random) and 2 selection strategies (helpful, random), each over ``seeds`` seeds."""
    per_seed_epoch = n_train * (3 * sum(1 - f for f in remove) + 2 * sum(select))
    return per_seed_epoch * seeds * epochs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="densenet121")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs (the first includes warm-up and is dropped)")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.n, 1, args.size, args.size), dtype=np.uint8)
    y = (rng.random((args.n, 14)) < 0.1).astype(np.float32)
    cfg = TrainConfig(model=args.model, epochs=args.epochs, batch_size=args.batch, lr=1e-4, weight_decay=1e-4,
                      pos_weight_clamp=[2, 8], augment=True, amp=cuda, channels_last=cuda, compile=args.compile,
                      num_workers=4 if cuda else 0)
    times = []
    res = train(x, y, x[:64], y[:64], "multilabel", 14, cfg, seed=0, progress=lambda r: times.append(time.perf_counter()))
    epoch_s = float(np.median(np.diff(times))) if len(times) > 1 else times[0]
    train_ips = args.n / epoch_s

    model = res.model.eval().float()
    device = next(model.parameters()).device
    ck = [Checkpoint(1, 1e-4, {k: v.to(device) for k, v in res.best_state.items()})]
    train_s, val_s = Samples(x, y, "multilabel"), Samples(x[:64], y[:64], "multilabel")  # streamed from uint8, as in the pipeline
    tracin_scores(model, res.loss_fn, ck, Samples(x[:64], y[:64], "multilabel"), val_s, batch_size=args.batch, progress=False)  # warm-up
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    tracin_scores(model, res.loss_fn, ck, train_s, val_s, batch_size=args.batch, progress=False)  # central differences, the default
    if cuda:
        torch.cuda.synchronize()
    infl_ips = args.n / (time.perf_counter() - start)

    epochs, seeds = 5, 8
    baseline_h = NIH_TRAIN * epochs / train_ips / 3600
    influence_h = (NIH_TRAIN + NIH_VAL) * epochs / infl_ips / 3600
    cells_h = study_images(NIH_TRAIN, epochs, seeds) / train_ips / 3600
    device_name = torch.cuda.get_device_name() if cuda else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"date {datetime.date.today()} | device {device_name} | torch {torch.__version__}")
    print(f"model {args.model} {args.size}px batch {args.batch} n {args.n} amp {cfg.amp} channels_last {cfg.channels_last} compile {args.compile}")
    print(f"training: {train_ips:.1f} images/s   fast TracIn (one checkpoint): {infl_ips:.1f} images/s   ratio influence/training cost per image: {train_ips / infl_ips:.2f}")
    print(f"extrapolated NIH study ({NIH_TRAIN} train images, {epochs} epochs, {seeds} seeds, remove 5/15/35/60 %, select 10/40/80 %):")
    print(f"  baseline {baseline_h:.2f} h + influence over {epochs} checkpoints {influence_h:.2f} h + subset cells {cells_h:.1f} h = {baseline_h + influence_h + cells_h:.1f} h")


if __name__ == "__main__":
    main()
