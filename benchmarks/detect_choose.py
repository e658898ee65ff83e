"""Choose the recommended detection ranking on the development cells only.

    python benchmarks/detect_choose.py --cells /tmp/detect-full --dev-seeds 0

Reads only the cells of the development seeds (<setting>-s<seed>.parquet for seed in
--dev-seeds; the held-out seeds' files are never opened) and scores a candidate list
fixed in this file before any cell was run: every ranking column, and rank averages
(sampleval.detection.rankings.rank_average) of pairs and triples of the cheap rankings.
Criterion: the largest worst-case AUROC margin over cleanlab (out-of-fold) across the
development cells; ties broken by the mean AUROC. Prints a table in markdown.
"""
from __future__ import annotations

import argparse
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sampleval.detection.cell import BASE_COLUMNS  # noqa: E402
from sampleval.detection.rankings import rank_average  # noqa: E402

# Components for combinations, fixed in advance: the cheap estimators of the default sweep
# plus cleanlab (it runs in every cell anyway).
COMPONENTS = ["loss", "tracin", "tracin_last_layer", "tracin_last_layer_self_influence", "if_diag", "if_last_layer", "cleanlab"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", required=True)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--dev-seeds", nargs="+", type=int, default=[0])
    args = ap.parse_args()
    settings = list(yaml.safe_load(Path(args.params).read_text())["detect"]["settings"])
    tables = {}
    for s in settings:
        for seed in args.dev_seeds:
            path = Path(args.cells) / f"{s}-s{seed}.parquet"
            if path.exists():
                tables[f"{s}-s{seed}"] = pd.read_parquet(path)
    common = set.intersection(*(set(t.columns) for t in tables.values())) - set(BASE_COLUMNS)
    singles = [c for c in next(iter(tables.values())).columns if c in common]
    combos = [list(c) for k in (2, 3) for c in combinations([c for c in COMPONENTS if c in common], k)]
    rows = []
    for cand in [[c] for c in singles] + combos:
        name = cand[0] if len(cand) == 1 else "avg(" + "+".join(cand) + ")"
        margins, aucs = [], []
        for cell, t in tables.items():
            cols = {c: t[c].to_numpy() for c in cand + ["cleanlab"]}
            score = cols[cand[0]] if len(cand) == 1 else rank_average(cols, cand)
            flipped = t["flipped"].to_numpy(bool)
            auc = roc_auc_score(flipped, score)
            aucs.append(auc)
            margins.append(auc - roc_auc_score(flipped, cols["cleanlab"]))
        rows.append({"candidate": name, "min_margin_vs_cleanlab": min(margins), "n_cells_at_least_cleanlab": int(np.sum(np.array(margins) >= 0)),
                     "mean_auroc": float(np.mean(aucs)), "min_auroc": float(np.min(aucs))})
    df = pd.DataFrame(rows).sort_values(["min_margin_vs_cleanlab", "mean_auroc"], ascending=False)
    print(f"development cells ({len(tables)}): {', '.join(tables)}\n")
    print(df.head(25).to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    main()
