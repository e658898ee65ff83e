"""Which TracIn checkpoints predict retraining best: fidelity of the checkpoint variants
(all, up_to_selected, burn_in_1, burn_in_2) across baseline seeds and a second kind of noise.

For each setting it prepares the data, trains the baseline with per-epoch checkpoints,
computes our TracIn (per-checkpoint columns), then calls the fidelity library
(:func:`sampleval.experiments.fidelity.evaluate`: leave-one-out paired by seed and LDS, bootstrap CIs),
and records the flipped-label detection AUROC of every variant and every single checkpoint.
Everything goes through the library in a temporary folder (no DVC). Prints a markdown
table (mean and range over seeds) and writes the raw results as JSON.

    OMP_NUM_THREADS=1 python benchmarks/fidelity_variants.py --out /tmp/fidelity_variants.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sampleval.config import Params, load  # noqa: E402
from sampleval.experiments import fidelity as fid  # noqa: E402
from sampleval.experiments.settings import FidelityParams  # noqa: E402
from sampleval.data.prepared import load_prepared  # noqa: E402
from sampleval.influence.core import Samples, load_checkpoints  # noqa: E402
from sampleval.influence.tracin import tracin_scores  # noqa: E402
from sampleval.training.models import build_model  # noqa: E402
from sampleval.data.prepare import prepare_dataset  # noqa: E402
from sampleval.influence.tracin_variants import variant_scores  # noqa: E402
from sampleval.training.loop import TrainConfig, list_checkpoints, make_loss, train  # noqa: E402

SETTINGS = {
    "pairwise 9->4 40 %, seed 0": ({"kind": "pairwise"}, 0),
    "pairwise 9->4 40 %, seed 1": ({"kind": "pairwise"}, 1),
    "pairwise 9->4 40 %, seed 2": ({"kind": "pairwise"}, 2),
    "uniform 10 %, seed 0": ({"kind": "uniform", "rate": 0.1}, 0),
}


def run_setting(base: Params, noise: dict, seed: int, fcfg: FidelityParams, work: Path) -> dict:
    params = replace(base, noise=replace(base.noise, **noise), seed=seed)
    t0 = time.perf_counter()
    prepare_dataset(params.data, params.noise, seed, work / "prepared")
    prepared = load_prepared(work / "prepared")
    tr, va = prepared.split("train"), prepared.split("val")
    cfg = TrainConfig.from_params(params)
    cfg.device = "cpu"
    torch.manual_seed(seed)
    base_run = train(tr.x, tr.y, va.x, va.y, prepared.task, prepared.n_classes, cfg, seed, ckpt_dir=work / "ckpt")
    model = build_model(cfg.model, tr.x.shape[1], prepared.n_classes, tr.x.shape[-1], None)
    cols = tracin_scores(model, make_loss(prepared.task, cfg, tr.y), load_checkpoints(list_checkpoints(work / "ckpt")),
                         Samples(tr.x, tr.y, prepared.task), Samples(va.x, va.y, prepared.task), params.influence.batch_size,
                         progress=False, method=params.influence.tracin_method)
    flipped = prepared.table.loc[prepared.table["split"] == "train", "flipped"].to_numpy(bool)
    t_base = time.perf_counter() - t0
    detect = {v: float(roc_auc_score(flipped, -variant_scores(cols, v, base_run.best_epoch))) for v in fcfg.tracin_checkpoints}
    per_epoch = {c: float(roc_auc_score(flipped, -s)) for c, s in cols.items() if c.startswith("tracin_epoch_")}
    setup = fid.Retraining(tr.x, tr.y, va.x, va.y, prepared.task, prepared.n_classes, cfg, epoch=base_run.best_epoch)
    import pandas as pd

    out, _ = fid.evaluate(setup, pd.DataFrame(cols), ["tracin"], fcfg, seed, selected_epoch=base_run.best_epoch)
    return {"best_epoch": base_run.best_epoch, "n_flipped": int(flipped.sum()), "detect_auroc": detect, "detect_auroc_per_epoch": per_epoch,
            "fidelity": out, "baseline_s": round(t_base, 1), "fidelity_s": round(time.perf_counter() - t0 - t_base, 1)}


def table(results: dict, variants) -> str:
    def cell(values, d=2):
        v = np.asarray(values, float)
        return f"{v.mean():.{d}f} ({v.min():.{d}f} to {v.max():.{d}f})" if len(v) > 1 else f"{v[0]:.{d}f}"

    groups = {"pairwise 9->4 40 %, seeds 0-2": [k for k in results if k.startswith("pairwise")],
              "uniform 10 %, seed 0": [k for k in results if k.startswith("uniform")]}
    lines = ["| setting | variant | LOO Spearman | LOO Pearson | LDS | detection AUROC | separated from best (LOO / LDS) |", "|---|---|---|---|---|---|---|"]
    for g, keys in groups.items():
        if not keys:
            continue
        for v in variants:
            es = [results[k]["fidelity"]["tracin_checkpoints"][v] for k in keys]
            sep = [f"{int(e.get('loo_spearman_vs_best_hi', 0) < 0)}/{int(e.get('lds_vs_best_hi', 0) < 0)}" for e in es]
            lines.append(f"| {g} | {v} | {cell([e['loo_spearman'] for e in es])} | {cell([e['loo_pearson'] for e in es])} | "
                         f"{cell([e['lds'] for e in es])} | {cell([results[k]['detect_auroc'][v] for k in keys], 3)} | {' '.join(sep)} |")
    return "\n".join(lines)


def epoch_table(results: dict) -> str:
    """Detection AUROC of every single checkpoint's column, per setting."""
    epochs = sorted({c for r in results.values() for c in r["detect_auroc_per_epoch"]})
    lines = ["| setting | best epoch | " + " | ".join(e[-3:] for e in epochs) + " |", "|---|---|" + "---|" * len(epochs)]
    for k, r in results.items():
        lines.append(f"| {k} | {r['best_epoch']} | " + " | ".join(f"{r['detect_auroc_per_epoch'].get(e, float('nan')):.3f}" for e in epochs) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="/tmp/fidelity_variants.json")
    ap.add_argument("--settings", nargs="*", default=list(SETTINGS))
    ap.add_argument("--n-points", type=int, help="default: fidelity.n_points of params.yaml")
    ap.add_argument("--n-subsets", type=int, help="default: fidelity.n_subsets of params.yaml")
    ap.add_argument("--table-from", nargs="*", help="print the tables of earlier --out files (runs split over processes) and stop")
    args = ap.parse_args()
    if args.table_from:
        merged = {}
        for path in args.table_from:
            merged.update(json.loads(Path(path).read_text()))
        variants = [v for v in next(iter(merged.values()))["fidelity"]["tracin_checkpoints"] if v != "selected_epoch"]
        print(table(merged, variants) + "\n\n" + epoch_table(merged))
        return
    torch.set_num_threads(1)
    base = load(args.params)
    f = base.fidelity
    fcfg = replace(f, n_points=args.n_points or f.n_points, n_subsets=args.n_subsets or f.n_subsets)
    results = {}
    for name in args.settings:
        with tempfile.TemporaryDirectory() as work:
            results[name] = run_setting(base, *SETTINGS[name], fcfg, Path(work))
        r = results[name]
        print(f"{name}: best epoch {r['best_epoch']}, baseline {r['baseline_s']} s, fidelity {r['fidelity_s']} s, detection {r['detect_auroc']}", flush=True)
        Path(args.out).write_text(json.dumps(results, indent=1, default=float))
    print(f"\nfidelity: {fcfg}\n")
    print(table(results, fcfg.tracin_checkpoints) + "\n\n" + epoch_table(results))


if __name__ == "__main__":
    main()
