"""A worked estimate of the NIH ChestXray14 study on 1 and on 8 GPUs (README "Scaling up").

The study's workload: 144 DenseNet-121 retrainings (subset cells x seeds) at 224 px on the
training split, plus TracIn over its checkpoints. Per-job cost = epochs x n_train / training
throughput + the executor's per-job overhead; TracIn per checkpoint = a measured fraction of
an epoch. Inputs and where each comes from are printed with the result; the GPU training
throughput is an ASSUMPTION until `benchmarks/bench_train.py` has run on a GPU (no GPU was
lent to this project so far).
Usage: python benchmarks/scale_estimate.py [--throughput IMG_PER_S] [--overhead-s S]
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-train", type=int, default=86_524, help="NIH14 training images (the study's train split: 86,524 of 112,120)")
    ap.add_argument("--retrainings", type=int, default=144, help="the study's subset retrainings")
    ap.add_argument("--throughput", type=float, default=1200.0,
                    help="ASSUMED DenseNet-121 224 px training images/s on one GPU with bf16 + channels_last")
    ap.add_argument("--tracin-epoch-ratio", type=float, default=0.47,
                    help="TracIn cost per checkpoint / one training epoch, measured on DenseNet-121 224 px (benchmarks/RESULTS.md)")
    ap.add_argument("--overhead-s", type=float, default=2.0,
                    help="per-job overhead: the executor's own is 0.01 s (local) / 0.002 s (Ray) once workers are up "
                         "(benchmarks/RESULTS-scale.md); 2 s allows for a job's model set-up and data hand-over")
    ap.add_argument("--gpus", type=int, nargs="+", default=[1, 8])
    args = ap.parse_args()
    preset = yaml.safe_load((ROOT / "presets" / "nih14_study.yaml").read_text())
    epochs = int(preset["train"]["epochs"])
    epoch_s = args.n_train / args.throughput
    job_s = epochs * epoch_s + args.overhead_s
    tracin_s = epochs * args.tracin_epoch_ratio * epoch_s  # every checkpoint, over the whole training set
    print(f"inputs: {args.n_train:,} training images, {epochs} epochs (presets/nih14_study.yaml), {args.retrainings} retrainings,")
    print(f"        {args.throughput:,.0f} img/s per GPU (ASSUMED), TracIn {args.tracin_epoch_ratio} epoch per checkpoint (measured, CPU),")
    print(f"        {args.overhead_s} s per-job overhead (the executor's measured 0.01 s, plus model set-up and data hand-over)")
    print(f"one retraining: {job_s / 60:.1f} min; TracIn over all checkpoints: {tracin_s / 60:.1f} min on one GPU\n")
    print("| GPUs | retrainings (rounds x job) | TracIn (shards = GPUs) | total | speed-up |")
    print("|---|---|---|---|---|")
    base = None
    for g in args.gpus:
        rounds = math.ceil(args.retrainings / g)
        retrain = rounds * job_s
        tr = tracin_s / g + args.overhead_s
        total = retrain + tr + job_s  # + the baseline training, which nothing runs beside
        base = base or total
        print(f"| {g} | {rounds} x {job_s / 60:.1f} min = {retrain / 3600:.1f} h | {tr / 60:.1f} min | {total / 3600:.1f} h | {base / total:.1f}x |")


if __name__ == "__main__":
    main()
