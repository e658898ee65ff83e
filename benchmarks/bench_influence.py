"""Influence estimator cost on CPU: one training epoch vs our fast TracIn vs Captum's TracInCP.

Part 1 (one process): the real digits upsampled to 32 px; SmallCNN, ResNet-18 and
DenseNet-121. For each model it times one training epoch of the study's recipe
(``sampleval.training.loop.train``, ``epochs=1``, batch 32), then one checkpoint of our fast
aggregate TracIn with each directional-derivative method (``central``, the default: two
no-grad forward passes; ``jvp``: forward-mode AD), the epoch and the central TracIn again
in channels-last layout (``train.channels_last``), and Captum's TracInCP in hook mode
(per-batch sample-wise gradients, default layout: it cannot read channels-last
gradients); then it checks that the score vectors agree (Spearman, maximum difference
relative to the largest score). Every time is the median of ``--repeats`` runs after an
untimed warm-up. Captum's hook mode only sees Conv2d/Linear layers, so for the BatchNorm
networks Captum is given those layers and, for the agreement, our direction is restricted
to the same parameters (zero on the BatchNorm parameters: the same cost), which makes
both compute exactly the same quantity. The prototype the issue cites reached 0.45x an
epoch (ResNet-18) and 0.65x (DenseNet-121) per checkpoint on a 2-core CPU.

Part 2 (one subprocess per size and allocator setting, started first while this process
is small, because ``ru_maxrss`` survives fork/exec): peak resident memory
(``resource.getrusage``) of our fast TracIn streaming from uint8 images
(:class:`sampleval.influence.core.Samples`, as the pipeline does) over 10k and 100k
synthetic 16x16 samples with the small CNN, then of the self-influence pass, against the
peak after the uint8 data alone; and, for comparison, the peak after materialising the
float copy that streaming avoids. Each size runs with glibc's default allocator settings
and with a fixed mmap threshold: the default's peak varies from run to run (heap
fragmentation), the fixed one's does not.

    python benchmarks/bench_influence.py            # full run (a few minutes on 2 idle cores)
    python benchmarks/bench_influence.py --quick    # smaller sizes, for a smoke test
    python benchmarks/bench_influence.py --large    # DenseNet-121 at the study's 224 px only (about 6 minutes)
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
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sampleval.influence.core import Checkpoint, Samples, as_inputs, batches, directional_derivatives, summed_gradient  # noqa: E402
from sampleval.influence.tracin import ReducedLoss, self_influence_scores, tracin_scores  # noqa: E402
from sampleval.training.loop import TrainConfig, make_loss, train  # noqa: E402


def digits_upsampled(n_train: int, n_val: int, side: int = 32, seed: int = 0):
    """The real digits, nearest-upsampled from 8 px to ``side`` (a multiple of 8), as uint8 (N, 1, side, side)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = np.clip(np.rint(d.images * (255 / 16)), 0, 255).astype(np.uint8)
    imgs = np.repeat(np.repeat(imgs, side // 8, axis=1), side // 8, axis=2)[:, None]
    idx = np.random.default_rng(seed).permutation(len(imgs))
    tr, va = idx[:n_train], idx[n_train : n_train + n_val]
    return imgs[tr], d.target[tr], imgs[va], d.target[va]


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _interleaved_medians(jobs: dict, repeats: int) -> tuple[dict, dict]:
    """``({job: last result}, {job: median wall time})`` over ``repeats`` rounds that call
    every job once each, in turn: single timings of sub-second calls swing by a third with
    the machine's state (allocator, caches), and interleaving lets a drifting state affect
    every job alike. Warm-ups are the caller's."""
    outs, times = {}, {k: [] for k in jobs}
    for _ in range(repeats):
        for k, job in jobs.items():
            outs[k], t = _timed(job)
            times[k].append(t)
    return outs, {k: statistics.median(ts) for k, ts in times.items()}


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
        loss_fn=ReducedLoss(loss_fn, "sum"),
        batch_size=batch_size,
        sample_wise_grads_per_batch=True,
        layers=layers,
    )
    return tracin.influence(val_t, k=None, show_progress=False).sum(0).double().numpy()


def _forward_losses(model, loss_fn, train, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([loss_fn(model(xb), yb, reduction="none") for xb, yb in batches(*train, batch_size)])


def ours_restricted(model, loss_fn, ckpt: Checkpoint, train_t, val_t, batch_size: int, keep: set[str], method: str):
    """Our fast TracIn with the direction zeroed outside the parameters in ``keep``."""
    model.load_state_dict(ckpt.state)
    model.eval()
    g = summed_gradient(model, loss_fn, *val_t, batch_size=batch_size)
    g = {k: (v if k in keep else torch.zeros_like(v)) for k, v in g.items()}
    return ckpt.lr * directional_derivatives(model, loss_fn, g, *train_t, batch_size=batch_size, method=method).numpy()


def _agreement(a: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    from scipy.stats import spearmanr

    return float(spearmanr(a, ref).statistic), float(np.abs(a - ref).max() / np.abs(ref).max())


def compare(name: str, n_train: int, n_val: int, batch_size: int, repeats: int, side: int = 32) -> dict:
    """One model: training epoch, our fast TracIn (both methods; then channels-last), Captum,
    each the median of ``repeats`` runs after an untimed warm-up. Within a layout the
    jobs' repeats are interleaved; the layouts run one after the other (alternating them in
    one process slowed both)."""
    x, y, xv, yv = digits_upsampled(n_train, n_val, side)
    train_s, val_s = Samples(x, y, "multiclass"), Samples(xv, yv, "multiclass")  # streamed from uint8, as in the pipeline
    train_t, val_t = as_inputs(x, y, "multiclass"), as_inputs(xv, yv, "multiclass")  # Captum needs the float tensors
    row = {"model": name, "side": side, "n_train": n_train, "n_val": n_val}
    full = {}
    for layout in ("default", "channels_last"):
        cfg = TrainConfig(model=name, epochs=1, batch_size=32, lr=3e-3, device="cpu", channels_last=layout == "channels_last")
        res = train(x, y, xv, yv, "multiclass", 10, cfg, seed=0)  # untimed warm-up (one-off costs); same seed as the timed runs
        model, loss_fn = res.model, make_loss("multiclass", cfg, y)
        ckpt = Checkpoint(1, cfg.lr, {k: v.clone() for k, v in res.best_state.items()})
        jobs = {"epoch": lambda: train(x, y, xv, yv, "multiclass", 10, cfg, seed=0)}
        methods = ("central", "jvp") if layout == "default" else ("central",)
        for method in methods:
            jobs[method] = lambda method=method: tracin_scores(model, loss_fn, [ckpt], train_s, val_s, batch_size, progress=False, method=method)["tracin"]
        if layout == "default":  # the parts: one no-grad forward pass over the training set, the validation gradient
            jobs["forward"] = lambda: _forward_losses(model, loss_fn, train_s.raw, batch_size)
            jobs["val_grad"] = lambda: summed_gradient(model, loss_fn, *val_s.raw, batch_size=batch_size)
        for k, job in jobs.items():
            if k != "epoch":  # the epoch was warmed up by the training run above
                job()
        outs, medians = _interleaved_medians(jobs, repeats)
        row.update({f"{layout}_{k}_s": t for k, t in medians.items()})
        for method in methods:
            full[method, layout] = outs[method]
            row[f"{layout}_{method}_over_epoch"] = row[f"{layout}_{method}_s"] / row[f"{layout}_epoch_s"]
    model = model.to(memory_format=torch.contiguous_format)  # Captum cannot read channels-last gradients
    row["params"] = sum(p.numel() for p in model.parameters())
    hookable = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    keep = {f"{m}.{p}" for m in hookable for p, _ in dict(model.named_modules())[m].named_parameters(recurse=False)}
    restricted = keep != {k for k, _ in model.named_parameters()}
    layers = hookable if restricted else None
    captum_hook_mode(model, loss_fn, ckpt, (train_t[0][:8], train_t[1][:8]), (val_t[0][:4], val_t[1][:4]), batch_size, layers)  # warm-up
    outs, medians = _interleaved_medians({"captum": lambda: captum_hook_mode(model, loss_fn, ckpt, train_t, val_t, batch_size, layers)}, repeats)
    ref, row["captum_s"] = outs["captum"], medians["captum"]
    for method in ("central", "jvp"):
        # Captum's quantity: with BatchNorm, our direction restricted to Captum's layers (same cost)
        same = ours_restricted(model, loss_fn, ckpt, train_s.raw, val_s.raw, batch_size, keep, method) if restricted else full[method, "default"]
        row[f"{method}_spearman"], row[f"{method}_max_rel"] = _agreement(same, ref)
        row[f"captum_over_{method}"] = row["captum_s"] / row[f"default_{method}_s"]
    row["captum_over_central_cl"] = row["captum_s"] / row["channels_last_central_s"]
    # the most any method can gain over Captum if it still needs the validation gradient and
    # one forward pass per training sample (ours makes two)
    row["captum_over_one_forward"] = row["captum_s"] / (row["default_forward_s"] + row["default_val_grad_s"])
    row["captum_params"] = "Conv2d+Linear only (BatchNorm excluded)" if restricted else "all"
    return row


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
    """Run in a subprocess: peak RSS after the uint8 data, after streaming TracIn over it,
    after self-influence, and after materialising the float copy (for comparison)."""
    from sampleval.training.losses import TrainingLoss
    from sampleval.training.models import SmallCNN

    side = 16
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 1, side, side), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    train_s, val_s = Samples(images, labels, "multiclass"), Samples(images[:256], labels[:256], "multiclass")
    model = SmallCNN(1, 10, side)
    ckpt = Checkpoint(1, 1e-3, {k: v.clone() for k, v in model.state_dict().items()})
    loss_fn = TrainingLoss("multiclass", 2.0, 0.05)
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # noqa: E731
    # untimed warm-ups on one batch (one-off allocations still count in the peak)
    warm = Samples(images[:batch_size], labels[:batch_size], "multiclass")
    tracin_scores(model, loss_fn, [ckpt], warm, val_s, batch_size, progress=False)
    self_influence_scores(model, loss_fn, [ckpt], warm, batch_size=128, progress=False)
    before = peak()
    out, t_fast = _timed(lambda: tracin_scores(model, loss_fn, [ckpt], train_s, val_s, batch_size, progress=False))
    after_fast = peak()
    self_inf, t_self = _timed(lambda: self_influence_scores(model, loss_fn, [ckpt], train_s, batch_size=128, progress=False))
    after_self = peak()
    assert out["tracin"].shape == (n,) and self_inf.shape == (n,) and train_s._tensors is None
    x, _ = train_s  # the float copy the streaming path never makes
    after_float = peak()
    print(
        json.dumps(
            {
                "n": n, "side": side, "data_mb": (images.nbytes + labels.nbytes) / 2**20, "float_mb": x.numel() * 4 / 2**20,
                "peak_before_kb": before, "peak_fast_kb": after_fast, "peak_self_kb": after_self, "peak_float_kb": after_float,
                "vm_hwm_kb": _vm_hwm_kb(), "fast_s": t_fast, "self_s": t_self,
            }
        )
    )


# glibc's malloc moves its mmap threshold with the sizes it has freed, so which activations
# land on the heap (and fragment it) differs from run to run: the peak of the same code
# varied between +0 and +0.9 GB. A fixed threshold makes the peak reproducible (and the
# code slower: every large tensor is a fresh mmap).
ALLOCATOR = {"glibc default": {}, "fixed mmap threshold": {"MALLOC_MMAP_THRESHOLD_": "131072"}}


def rss(n: int, batch_size: int, threads: int, allocator: str) -> dict:
    # ru_maxrss survives fork/exec on Linux, so the children are started while this
    # process is still small (before any model is built); VmHWM is kept in the JSON as a cross-check.
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), **ALLOCATOR[allocator]}
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
    ap.add_argument("--large", action="store_true", help="only DenseNet-121 at 224 px (32 train / 8 val samples), no memory part")
    ap.add_argument("--rss-child", type=int)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (the median is printed)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the pipeline uses 1: stable timings on a shared 2-core VM)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(args.rss_child, args.batch_size)
        return
    import warnings

    warnings.filterwarnings("ignore")
    print(f"# bench_influence  {dt.datetime.now().isoformat(timespec='seconds')}")
    print(f"# {machine()}")
    runs = [("small_cnn", 512, 128, 128, 32), ("resnet18", 256, 64, 128, 32), ("densenet121", 128, 32, 64, 32)]
    sizes = (10_000, 100_000)
    if args.quick:
        runs = [("small_cnn", 128, 32, 32, 32), ("resnet18", 64, 8, 16, 32)]
        sizes = (2_000, 20_000)
    if args.large:  # the study's resolution; the memory part is skipped
        runs, sizes = [("densenet121", 32, 8, 32, 224)], ()
    memory = {mode: [rss(n, args.batch_size, args.threads, mode) for n in sizes] for mode in ALLOCATOR}  # first, while this process is small

    print()
    print(
        f"One training epoch (batch 32) vs one TracIn checkpoint, digits upsampled from 8 px; every time the median of "
        f"{args.repeats} runs after a warm-up; agreement with Captum on the same parameters. Columns `cl`: channels-last "
        "layout (`train.channels_last`) for the epoch and our TracIn; Captum runs in the default layout (it cannot read "
        "channels-last gradients). The last three columns split our cost: one no-grad forward pass over the training set, "
        "the validation gradient, and the most any method that still needs both could gain over Captum."
    )
    print()
    print(
        "| model | px | params | n train / val | 1 epoch (s) | central (s) | central / epoch | jvp (s) | jvp / epoch "
        "| cl: 1 epoch (s) | cl: central (s) | cl: central / epoch | Captum hook (s) | Captum / central | Captum / jvp | Captum / cl central "
        "| 1 forward pass (s) | val gradient (s) | Captum / (1 forward + val gradient) "
        "| central vs Captum: Spearman, max rel diff | jvp vs Captum: Spearman, max rel diff | Captum sees |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, n_train, n_val, bs, side in runs:
        r = compare(name, n_train, n_val, bs, args.repeats, side)
        print(
            f"| {r['model']} | {r['side']} | {r['params']:,} | {r['n_train']} / {r['n_val']} | {r['default_epoch_s']:.2f} | {r['default_central_s']:.2f} | "
            f"{r['default_central_over_epoch']:.2f}x | {r['default_jvp_s']:.2f} | {r['default_jvp_over_epoch']:.2f}x | "
            f"{r['channels_last_epoch_s']:.2f} | {r['channels_last_central_s']:.2f} | {r['channels_last_central_over_epoch']:.2f}x | "
            f"{r['captum_s']:.2f} | {r['captum_over_central']:.1f}x | {r['captum_over_jvp']:.1f}x | {r['captum_over_central_cl']:.1f}x | "
            f"{r['default_forward_s']:.2f} | {r['default_val_grad_s']:.2f} | {r['captum_over_one_forward']:.1f}x | "
            f"{r['central_spearman']:.6f}, {r['central_max_rel']:.1e} | {r['jvp_spearman']:.6f}, {r['jvp_max_rel']:.1e} | {r['captum_params']} |",
            flush=True,
        )
    if not sizes:
        return
    print()
    print(
        f"Peak RSS (ru_maxrss) streaming from uint8 16x16 images, SmallCNN, one checkpoint: fast TracIn (central, batch {args.batch_size}), "
        "then self-influence (vmap per-sample gradients, batch 128), then the float copy of the data that streaming avoids; "
        "with glibc's default allocator settings and with its mmap threshold fixed (MALLOC_MMAP_THRESHOLD_=131072):"
    )
    print()
    print(
        "| allocator | n samples | uint8 data (MB) | peak after data and warm-up (MB) | after fast TracIn (MB) | increase (MB) | fast TracIn (s) "
        "| after self-influence (MB) | self-influence (s) | float copy (MB) | after float copy (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for mode, rows in memory.items():
        for r in rows:
            mb = {k: r[k] / 1024 for k in ("peak_before_kb", "peak_fast_kb", "peak_self_kb", "peak_float_kb")}
            print(
                f"| {mode} | {r['n']:,} | {r['data_mb']:.1f} | {mb['peak_before_kb']:.0f} | {mb['peak_fast_kb']:.0f} | "
                f"{mb['peak_fast_kb'] - mb['peak_before_kb']:.1f} | {r['fast_s']:.1f} | {mb['peak_self_kb']:.0f} | {r['self_s']:.1f} | "
                f"{r['float_mb']:.0f} | {mb['peak_float_kb']:.0f} |"
            )


if __name__ == "__main__":
    main()
