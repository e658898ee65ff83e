"""Influence estimator cost on CPU: one training epoch vs our fast TracIn vs Captum's TracInCP.

Part 1 (one process): the real digits upsampled to 32 px, SmallCNN and ResNet-18. For each
model it times one training epoch of the study's recipe (``sampleval.training.train``,
``epochs=1``), then one checkpoint of our fast aggregate TracIn (forward-mode directional
derivatives along the summed validation gradient) and of Captum's TracInCP in hook mode
(per-batch sample-wise gradients), and checks that the two score vectors agree
(Spearman). Every timed call follows an untimed warm-up on a few samples. Captum's hook mode only sees Conv2d/Linear layers, so for ResNet-18 Captum is
given those layers and our direction is restricted to the same parameters (zero on the
BatchNorm parameters), which makes both compute exactly the same quantity.

Part 2 (one subprocess per size, started first while this process is small, because
``ru_maxrss`` survives fork/exec): peak resident memory (``resource.getrusage``) of our
fast TracIn streaming over 10k and 100k synthetic 8x8 samples with the small CNN, then of
the self-influence pass, against the peak after the data alone: the increase stays flat,
bounded by the batch size, not by the training-set size.

    python benchmarks/bench_influence.py            # full run (about a minute on 2 idle cores)
    python benchmarks/bench_influence.py --quick    # smaller sizes, for a smoke test
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sampleval.influence.tracin import (  # noqa: E402
    Checkpoint,
    _ReducedLoss,
    directional_derivatives,
    per_sample_grad_sq_norms,
    summed_gradient,
    tracin_scores,
)
from sampleval.training import TrainConfig, make_loss, to_float, train  # noqa: E402


def digits_32(n_train: int, n_val: int, seed: int = 0):
    """The real digits, nearest-upsampled from 8 to 32 px, as uint8 (N, 1, 32, 32)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = np.clip(np.rint(d.images * (255 / 16)), 0, 255).astype(np.uint8)
    imgs = np.repeat(np.repeat(imgs, 4, axis=1), 4, axis=2)[:, None]
    idx = np.random.default_rng(seed).permutation(len(imgs))
    tr, va = idx[:n_train], idx[n_train : n_train + n_val]
    return imgs[tr], d.target[tr], imgs[va], d.target[va]


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def captum_hook_mode(model, loss_fn, ckpt: Checkpoint, train_t, val_t, batch_size: int, layers: list[str] | None):
    from captum.influence import TracInCP
    from torch.utils.data import TensorDataset

    def load(m, path):
        m.load_state_dict(ckpt.state)
        m.eval()
        return ckpt.lr

    tracin = TracInCP(
        model,
        TensorDataset(*train_t),
        checkpoints=["ckpt"],
        checkpoints_load_func=load,
        loss_fn=_ReducedLoss(loss_fn, "sum"),
        batch_size=batch_size,
        sample_wise_grads_per_batch=True,
        layers=layers,
    )
    return tracin.influence(val_t, k=None, show_progress=False).sum(0).double().numpy()


def ours_restricted(model, loss_fn, ckpt: Checkpoint, train_t, val_t, batch_size: int, keep: set[str]):
    """Our fast TracIn with the direction zeroed outside the parameters in ``keep``."""
    model.load_state_dict(ckpt.state)
    model.eval()
    g = summed_gradient(model, loss_fn, *val_t, batch_size=batch_size)
    g = {k: (v if k in keep else torch.zeros_like(v)) for k, v in g.items()}
    return ckpt.lr * directional_derivatives(model, loss_fn, g, *train_t, batch_size=batch_size).double().numpy()


def compare(name: str, n_train: int, n_val: int, batch_size: int) -> dict:
    from scipy.stats import spearmanr

    x, y, xv, yv = digits_32(n_train, n_val)
    cfg = TrainConfig(model=name, epochs=1, batch_size=64, lr=3e-3, device="cpu")
    train(x[:64], y[:64], xv[:8], yv[:8], "multiclass", 10, cfg, seed=0)  # untimed warm-up (one-off costs)
    res, t_epoch = _timed(lambda: train(x, y, xv, yv, "multiclass", 10, cfg, seed=0))
    model, loss_fn = res.model, make_loss("multiclass", cfg, y)
    ckpt = Checkpoint(1, cfg.lr, {k: v.clone() for k, v in res.best_state.items()})
    train_t = (to_float(torch.from_numpy(x)), torch.from_numpy(y))
    val_t = (to_float(torch.from_numpy(xv)), torch.from_numpy(yv))

    hookable = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    keep = {f"{m}.{p}" for m in hookable for p, _ in dict(model.named_modules())[m].named_parameters(recurse=False)}
    all_params = {k for k, _ in model.named_parameters()}
    restricted = keep != all_params
    # untimed warm-ups of both code paths on a few samples
    few, few_val = (train_t[0][:8], train_t[1][:8]), (val_t[0][:4], val_t[1][:4])
    tracin_scores(model, loss_fn, [ckpt], few, few_val, batch_size, with_self_influence=False, progress=False)
    captum_hook_mode(model, loss_fn, ckpt, few, few_val, batch_size, hookable if restricted else None)
    ours_full, t_ours = _timed(
        lambda: tracin_scores(model, loss_fn, [ckpt], train_t, val_t, batch_size, with_self_influence=False, progress=False)["tracin"]
    )
    central, t_central = _timed(
        lambda: tracin_scores(model, loss_fn, [ckpt], train_t, val_t, batch_size, with_self_influence=False, progress=False, method="central")["tracin"]
    )
    if restricted:
        ours, t_ours_r = _timed(lambda: ours_restricted(model, loss_fn, ckpt, train_t, val_t, batch_size, keep))
    else:
        ours, t_ours_r = ours_full, t_ours
    ref, t_captum = _timed(lambda: captum_hook_mode(model, loss_fn, ckpt, train_t, val_t, batch_size, hookable if restricted else None))
    rho = float(spearmanr(ours, ref).statistic)
    rel = float(np.abs(ours - ref).max() / np.abs(ref).max())
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "model": name,
        "params": n_params,
        "n_train": n_train,
        "n_val": n_val,
        "epoch_s": t_epoch,
        "ours_s": t_ours,
        "ours_same_params_s": t_ours_r,
        "captum_s": t_captum,
        "captum_over_ours": t_captum / t_ours_r,
        "ours_over_epoch": t_ours / t_epoch,
        "central_over_epoch": t_central / t_epoch,
        "central_spearman_vs_jvp": float(spearmanr(central, ours_full).statistic),
        "central_max_rel_vs_jvp": float(np.abs(central - ours_full).max() / np.abs(ours_full).max()),
        "spearman": rho,
        "max_rel_diff": rel,
        "captum_params": "Conv2d+Linear only (BatchNorm excluded)" if restricted else "all",
    }


def _vm_hwm_kb() -> int | None:
    """Peak RSS of this process image from /proc (Linux), which, unlike ru_maxrss, is not
    inherited from the parent across fork/exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_child(n: int, batch_size: int) -> None:
    """Run in a subprocess: peak RSS after the data, then after streaming TracIn over it."""
    from sampleval.losses import TrainingLoss
    from sampleval.models import SmallCNN

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 8, 8, generator=gen) * 2 - 1
    y = torch.randint(0, 10, (n,), generator=gen)
    xv, yv = x[:256].clone(), y[:256].clone()
    model = SmallCNN(1, 10, 8)
    ckpt = Checkpoint(1, 1e-3, {k: v.clone() for k, v in model.state_dict().items()})
    loss_fn = TrainingLoss("multiclass", 2.0, 0.05)
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # noqa: E731
    before = peak()
    # untimed warm-up on one batch (one-off allocations still count in the peak)
    tracin_scores(model, loss_fn, [ckpt], (x[:batch_size], y[:batch_size]), (xv, yv), batch_size, progress=False)
    t = time.perf_counter()
    out = tracin_scores(model, loss_fn, [ckpt], (x, y), (xv, yv), batch_size, with_self_influence=False, progress=False)
    t_fast = time.perf_counter() - t
    after_fast = peak()
    t = time.perf_counter()
    self_inf = per_sample_grad_sq_norms(model, loss_fn, x, y, batch_size=128)
    t_self = time.perf_counter() - t
    after_self = peak()
    assert out["tracin"].shape == (n,) and self_inf.shape == (n,)
    data_mb = (x.numel() * 4 + y.numel() * 8) / 2**20
    print(
        json.dumps(
            {
                "n": n, "data_mb": data_mb, "peak_before_kb": before, "peak_fast_kb": after_fast, "peak_self_kb": after_self,
                "vm_hwm_kb": _vm_hwm_kb(), "fast_s": t_fast, "self_s": t_self,
            }
        )
    )


def rss(n: int, batch_size: int, threads: int) -> dict:
    # ru_maxrss survives fork/exec on Linux, so the children are started while this
    # process is still small (before any model is built); VmHWM is kept in the JSON as a cross-check.
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(n), "--batch-size", str(batch_size), "--threads", str(threads)],
        capture_output=True, text=True, env=env, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (
        f"{platform.node()} | {cpu} | {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads | "
        f"python {platform.python_version()} | load average {load[0]:.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rss-child", type=int)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(args.rss_child, args.batch_size)
        return
    import warnings

    warnings.filterwarnings("ignore")
    print(f"# bench_influence  {dt.datetime.now().isoformat(timespec='seconds')}")
    print(f"# {machine()}")
    runs = [("small_cnn", 512, 128, 64), ("resnet18", 256, 32, 32)]
    sizes = (10_000, 100_000)
    if args.quick:
        runs = [("small_cnn", 128, 32, 32), ("resnet18", 64, 8, 16)]
        sizes = (2_000, 20_000)
    memory = [rss(n, args.batch_size, args.threads) for n in sizes]  # first, while this process is small

    print()
    print("Training one epoch vs one TracIn checkpoint (digits upsampled to 32 px):")
    print()
    print(
        "| model | params | n train / val | 1 epoch (s) | ours (s) | ours, Captum's params (s) | Captum hook (s) | Captum / ours "
        "| ours / epoch | Spearman | max rel diff | Captum sees | central diff / epoch | central vs jvp: Spearman, max rel diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, n_train, n_val, bs in runs:
        r = compare(name, n_train, n_val, bs)
        print(
            f"| {r['model']} | {r['params']:,} | {r['n_train']} / {r['n_val']} | {r['epoch_s']:.2f} | {r['ours_s']:.2f} | "
            f"{r['ours_same_params_s']:.2f} | {r['captum_s']:.2f} | {r['captum_over_ours']:.1f}x | {r['ours_over_epoch']:.2f}x | "
            f"{r['spearman']:.6f} | {r['max_rel_diff']:.1e} | {r['captum_params']} | {r['central_over_epoch']:.2f}x | "
            f"{r['central_spearman_vs_jvp']:.6f}, {r['central_max_rel_vs_jvp']:.1e} |",
            flush=True,
        )
    print()
    print(
        f"Peak RSS (ru_maxrss) streaming over synthetic 8x8 data, SmallCNN, one checkpoint: our fast TracIn (batch {args.batch_size}), "
        "then self-influence (vmap per-sample gradients, batch 128):"
    )
    print()
    print(
        "| n samples | data (MB) | peak after data (MB) | peak after fast TracIn (MB) | increase (MB) | fast TracIn (s) "
        "| peak after self-influence (MB) | self-influence (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in memory:
        mb = {k: r[k] / 1024 for k in ("peak_before_kb", "peak_fast_kb", "peak_self_kb")}
        print(
            f"| {r['n']:,} | {r['data_mb']:.1f} | {mb['peak_before_kb']:.0f} | {mb['peak_fast_kb']:.0f} | "
            f"{mb['peak_fast_kb'] - mb['peak_before_kb']:.1f} | {r['fast_s']:.1f} | {mb['peak_self_kb']:.0f} | {r['self_s']:.1f} |"
        )

if __name__ == "__main__":
    main()
