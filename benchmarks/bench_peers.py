"""The field's estimators (Kronfluence EK-FAC, dattri TRAK and exact TracIn) against ours, on the default run.

    python benchmarks/bench_peers.py [--root .] [--models 16] [--workers 2] [--out benchmarks/RESULTS-peers.md]

Reads the pipeline's default outputs under ``--root`` (``data/prepared``, ``models/checkpoints``,
``models/model.pt``: run ``dvc repro train`` first) and, in one process with one torch thread:

1. times one training run of the default recipe (the unit of every ratio);
2. times and scores our fast TracIn over the 10 checkpoints, dattri's exact TracIn over the
   same checkpoints and learning rates (per-sample gradients, no projection), our ``if_cg``,
   ``ekfac`` (Kronfluence's heuristic damping, also with two more seeds of the labels sampled
   for its Fisher, and damping 0.1) and ``trak`` (dattri, 512-dim
   CPU projection) with 1 model and with the ensembles; flip-detection AUROC of each
   (suspicion = minus the signed score, 1 = every flipped label ranked first);
3. our TracIn against dattri's exact TracIn: the speed ratio and the agreement (Spearman,
   max relative difference) at equal checkpoints;
4. the linear datamodeling score (LDS, :mod:`sampleval.experiments.fidelity`: ``fidelity.n_subsets``
   random half subsets retrained with the baseline's recipe and scored at the selected epoch,
   as the fidelity stage does) of every estimator, and of TRAK with 1, 2, 4, 8, ... models
   (prefixes of one ensemble, plus disjoint ensembles of the same size for the spread).

The TRAK ensemble's models are jobs of :func:`sampleval.runtime.compute.run_jobs` (``--workers``)
cached under ``--cache`` (default ``/tmp/sampleval-bench-peers``), so a rerun trains nothing.
The TRAK times are the mean time per model (training + TRAK features) x models, measured when
the models were trained: a cached rerun keeps the first run's per-model times.
``--out`` writes the tables as markdown (numbers from this run only).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from sampleval.config import load
from sampleval.runtime.compute import Compute
from sampleval.data.prepared import load_prepared
from sampleval.influence.registry import suspicion
from sampleval.experiments.fidelity import Retraining, linear_datamodeling_score, random_subsets, subset_val_losses
from sampleval.influence.context import Baseline, InfluenceSettings
from sampleval.influence.runner import run_estimator
from sampleval.influence.core import make_context
from sampleval.influence.core import as_inputs
from sampleval.influence.trak import ensemble_seeds, shared_data, trak_scores
from sampleval.training.loop import TrainConfig, train


def dattri_exact_tracin(ctx, epochs: list[int]) -> np.ndarray:
    """dattri's TracIn over ``epochs``' checkpoints, weighted by their learning rates, on our
    training loss; exact per-sample gradients (no projection); summed over validation."""
    from dattri.algorithm.tracin import TracInAttributor
    from dattri.task import AttributionTask
    from torch.func import functional_call

    model = ctx.model.eval()
    loss_fn = ctx.loss_fn

    def loss(params, data):
        x, y = data
        return loss_fn(functional_call(model, params, (x.unsqueeze(0),)), y.unsqueeze(0), reduction="sum")

    ckpts = [c for c in ctx.checkpoints if c.epoch in epochs]
    task = AttributionTask(loss_func=loss, model=model, checkpoints=[c.state for c in ckpts])
    attr = TracInAttributor(task, weight_list=torch.tensor([c.lr for c in ckpts]), normalized_grad=False, device="cpu")
    attr.projector_kwargs = None  # dattri projects by default; exact TracIn does not
    xt, yt = as_inputs(ctx.train.images, ctx.train.labels, ctx.task)
    xv, yv = as_inputs(ctx.val.images, ctx.val.labels, ctx.task)
    tl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xt, yt), batch_size=256, shuffle=False)
    vl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xv, yv), batch_size=256, shuffle=False)
    return attr.attribute(tl, vl).double().sum(1).numpy()


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=".")
    ap.add_argument("--models", type=int, default=16, help="largest TRAK ensemble")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", default="/tmp/sampleval-bench-peers")
    ap.add_argument("--n-subsets", type=int, default=None, help="LDS subsets (default: fidelity.n_subsets)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    root = Path(args.root)
    params = load("params.yaml")
    cfg = TrainConfig.from_params(params)
    cfg.device = "cpu"
    inf = params.influence
    prepared = load_prepared(root / "data/prepared")
    tr, va = prepared.split("train"), prepared.split("val")
    flipped = tr.flipped.astype(bool)
    lines = [f"machine: {platform.machine()}, {os.cpu_count()} cores shared with other sessions; torch threads 1; "
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; n_train {len(tr.ids)}, n_val {len(va.ids)}, flipped {int(flipped.sum())}"]

    def context(options: dict | None = None):
        settings = InfluenceSettings.from_params(replace(inf, options={**inf.options, **(options or {})}), params.seed)
        return make_context(Baseline.load(prepared, cfg, root / "models/checkpoints", root / "models/model.pt"), settings)

    # 1. one training run
    def one_training() -> float:
        return timed(lambda: train(tr.x, tr.y, va.x, va.y, prepared.task, prepared.n_classes, cfg, params.seed))[1]

    train_times = [one_training()]  # timed again after the estimators and at the end: the median is the unit
    train_s = train_times[0]
    rows, scores = [], {}

    def add(name: str, library: str, seconds: float, values: np.ndarray, column: str | None = None):
        scores[name] = values
        auroc = roc_auc_score(flipped, suspicion(column or "x", values))
        rows.append((name, library, seconds, auroc))
        print(f"{name}: {seconds:.2f} s ({seconds / train_s:.2f} trainings), flip AUROC {auroc:.4f}", flush=True)

    # 2. the estimators
    ctx = context({"tracin": {"checkpoints": "all", "burn_in": 0}})
    epochs = [c.epoch for c in ctx.checkpoints]
    ours, s = timed(lambda: run_estimator("tracin", ctx)["tracin"])
    add(f"our fast TracIn, {len(epochs)} checkpoints", "sampleval", s, ours)
    ctx = context()
    v, s = timed(lambda: run_estimator("tracin", ctx)["tracin"])
    add("our fast TracIn, default (burn_in 2)", "sampleval", s, v)
    exact, s_exact = timed(lambda: dattri_exact_tracin(context(), epochs))
    add(f"exact TracIn, {len(epochs)} checkpoints x lr", "dattri", s_exact, exact)
    v, s = timed(lambda: run_estimator("if_cg", context())["if_cg"])
    add("our if_cg", "sampleval", s, v)
    for damping in (None, 0.1):
        c = context({"ekfac": {"damping": damping, "self_influence": False, "query_batch_size": 64}})
        v, s = timed(lambda: run_estimator("ekfac", c)["ekfac"])
        add(f"ekfac, damping {'heuristic' if damping is None else damping}", "kronfluence", s, v)
    for seed in (1, 2):  # the seed of the labels sampled for the true Fisher
        c = context({"ekfac": {"damping": None, "self_influence": False, "query_batch_size": 64}})
        c.seed = seed
        v, s = timed(lambda: run_estimator("ekfac", c)["ekfac"])
        add(f"ekfac, damping heuristic, Fisher seed {seed}", "kronfluence", s, v)
    c = context({"ekfac": {"damping": None, "self_influence": True, "query_batch_size": 64}})
    v, s = timed(lambda: run_estimator("ekfac", c)["ekfac_self_influence"])
    add("ekfac_self_influence (with ekfac)", "kronfluence", s, v, column="ekfac_self_influence")

    # TRAK: one ensemble of --models models, cached jobs; prefixes and disjoint groups
    shared = shared_data(context())
    seeds = ensemble_seeds(params.seed, args.models)
    compute = Compute("local", args.workers, cpu_threads=1)
    from sampleval.runtime.compute import JobCache, run_jobs
    from sampleval.influence.trak import data_fingerprint, trak_model_job
    jobs = [{"seed": s, "train": __import__("dataclasses").asdict(cfg), "proj_dim": 512, "regularization": 0.0, "batch_size": inf.batch_size} for s in seeds]
    (per_model, wall) = timed(lambda: run_jobs(trak_model_job, jobs, compute, shared=shared, desc="trak ensemble",
                                              cache=JobCache(Path(args.cache), data_fingerprint(shared))))
    per_model_s = float(np.mean([r["train_s"] + r["trak_s"] for r in per_model]))
    trak_feat_s = float(np.mean([r["trak_s"] for r in per_model]))

    def trak_of(group):
        xinv = np.mean([np.asarray(per_model[i]["xinv"]) for i in group], axis=0)
        return xinv * np.mean([np.asarray(per_model[i]["q"]) for i in group], axis=0)

    sizes = [m for m in (1, 2, 4, 8, 16, 32) if m <= args.models]
    check, _ = timed(lambda: trak_scores(shared, cfg, seeds[:2], 512, 0.0, inf.batch_size, None, args.cache)[0])
    assert np.allclose(check, trak_of([0, 1])), "trak_scores and the benchmark's ensemble disagree"
    add("trak, 512-dim, 1 model (TRAK features only)", "dattri", trak_feat_s, trak_of([0]))
    for m in sizes:
        add(f"trak, 512-dim, {m} models (training included)", "dattri", per_model_s * m, trak_of(range(m)))

    train_times.append(one_training())

    # 3. our TracIn vs dattri's exact TracIn at equal checkpoints
    rel = float(np.abs(ours - exact).max() / np.abs(exact).max())
    rho = float(spearmanr(ours, exact).statistic)
    s_ours = rows[0][2]

    # 4. LDS
    n_subsets = args.n_subsets or params.fidelity.n_subsets
    selected = int(torch.load(root / "models/model.pt", map_location="cpu", weights_only=True)["epoch"])
    setup = Retraining(tr.x, tr.y, va.x, va.y, prepared.task, prepared.n_classes, cfg, epoch=selected)
    masks = random_subsets(len(tr.ids), n_subsets, params.fidelity.subset_fraction, params.seed)
    losses, lds_s = timed(lambda: subset_val_losses(setup, masks, params.fidelity.subset_seeds))
    lds = {name: linear_datamodeling_score(v, masks, losses) for name, v in scores.items() if "self_influence" not in name}
    groups = {}
    for m in sizes:
        parts = [list(range(g * m, (g + 1) * m)) for g in range(args.models // m)]
        groups[m] = [linear_datamodeling_score(trak_of(p), masks, losses) for p in parts]

    train_times.append(one_training())
    train_s = float(np.median(train_times))
    out = ["# The field's estimators against ours (benchmarks/bench_peers.py)\n", *lines, "",
           f"One training run of the default recipe: {train_s:.2f} s (median of {', '.join(f'{t:.2f}' for t in train_times)} s: "
           "at the start, after the estimators, at the end; the machine's load changes within a run). "
           f"Command: `python benchmarks/bench_peers.py --root {args.root} --models {args.models} --workers {args.workers}`.", "",
           "| method | library | compute s | / training run | flip AUROC | LDS |", "|---|---|---|---|---|---|"]
    for name, lib, s, auroc in rows:
        l = lds.get(name)
        out.append(f"| {name} | {lib} | {s:.2f} | {s / train_s:.2f} | {auroc:.4f} | {'' if l is None else f'{l:.3f}'} |")
    out += ["", f"Our fast TracIn vs dattri's exact TracIn over the same {len(epochs)} checkpoints and learning rates: "
            f"{s_exact / s_ours:.0f}x faster ({s_ours:.2f} s vs {s_exact:.2f} s), Spearman {rho:.6f}, max difference "
            f"{rel:.2e} of the largest score (our central differences in float32).", "",
            f"LDS: {n_subsets} random {params.fidelity.subset_fraction:.0%} subsets, retraining seeds {params.fidelity.subset_seeds}, "
            f"scored at the selected epoch {selected} ({lds_s:.0f} s of retraining).", "",
            "TRAK's LDS by ensemble size (prefix = models with seeds 1..m; disjoint = every disjoint group of m models of the ensemble):", "",
            "| models | LDS (prefix) | disjoint groups: mean | min | max | n groups |", "|---|---|---|---|---|---|"]
    for m in sizes:
        g = groups[m]
        out.append(f"| {m} | {lds[f'trak, 512-dim, {m} models (training included)']:.3f} | {np.mean(g):.3f} | {min(g):.3f} | {max(g):.3f} | {len(g)} |")
    out += ["", f"TRAK per model: {per_model_s:.2f} s (training + features; features alone {trak_feat_s:.2f} s, "
            f"{trak_feat_s / (per_model_s - trak_feat_s):.1f}x that job's own training); "
            f"ensemble of {args.models} in {wall:.1f} s wall on {args.workers} workers (0 if read from the job cache)."]
    text = "\n".join(out) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
