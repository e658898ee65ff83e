"""The sweep table, the recommended ranking (chosen here by a stated rule), baseline-seed
stability and the curves.

Reads the cells' ``<setting>-s<seed>.json`` and ``.parquet`` files (:mod:`.cell`) and
writes ``summary.json`` (metrics for ``dvc metrics diff``), ``summary.md``, ``summary.csv``,
and per setting the detection curves (share of flips found against share inspected) and
the labeling-bias paper's threshold curves, as CSV (``dvc plots``) and PNG.
"""
from __future__ import annotations

import json
from itertools import combinations as pairs_of
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sampleval.detection.recipe import BASE_COLUMNS, cell_name
from sampleval.detection.quality import THRESHOLDS, inspection_curve, jaccard_top, threshold_curve
from sampleval.detection.settings import RULES, DetectParams

if TYPE_CHECKING:
    from sampleval.config import Params

HEADLINE = ("auroc", "average_precision", "found_top_1pct", "found_top_5pct", "found_top_10pct", "found_top_20pct", "found_at_threshold_0.5", "fpr_at_threshold_0.5")
PAPER = "found ~90 % at 0.40 % false positives (threshold 0.5, diagonal-Hessian influence, MNIST 4/9, 20 % of 9s -> 4)"


def noise_kind(spec: dict) -> str:
    if spec["kind"] == "uniform":
        return "uniform"
    return "systematic (one class pair)" if len(spec.get("pairs") or []) == 1 else "asymmetric (several class pairs)"


def load_cells(table_dir: str | Path, settings: list[str], seeds: list[int], record_dir: str | Path | None = None) -> tuple[dict, dict]:
    """``records[(setting, seed)]`` (JSON, in ``record_dir``, default ``table_dir``) and
    ``tables[(setting, seed)]`` (parquet); a missing cell is an error (inputs come from
    params, nothing is globbed)."""
    table_dir = Path(table_dir)
    record_dir = Path(record_dir) if record_dir is not None else table_dir
    records, tables = {}, {}
    for s in settings:
        for seed in seeds:
            name = cell_name(s, seed)
            jpath, ppath = record_dir / f"{name}.json", table_dir / f"{name}.parquet"
            for p in (jpath, ppath):
                if not p.exists():
                    raise FileNotFoundError(f"detection cell {p} is missing; run `dvc repro detect` (or the sweep script) to create it")
            records[(s, seed)] = json.loads(jpath.read_text())
            tables[(s, seed)] = pd.read_parquet(ppath)
    return records, tables


def ranking_names(tables: dict) -> list[str]:
    """The ranking columns every cell has, in the first cell's order."""
    common = set.intersection(*(set(t.columns) for t in tables.values()))
    first = next(iter(tables.values()))
    return [c for c in first.columns if c not in BASE_COLUMNS and c in common]


def sweep_table(records: dict, settings: list[str], seeds: list[int], rankings: list[str]) -> dict:
    """``{setting: {ranking: {metric_mean, metric_sd, ...}}}``, mean and sample sd over seeds."""
    out: dict = {}
    for s in settings:
        out[s] = {}
        for r in rankings:
            entry = {}
            for m in HEADLINE:
                vals = np.array([records[(s, seed)]["rankings"][r].get(m, np.nan) for seed in seeds], dtype=float)
                entry[f"{m}_mean"] = float(np.nanmean(vals))
                entry[f"{m}_sd"] = float(np.nanstd(vals, ddof=1)) if len(vals) > 1 else 0.0
            out[s][r] = entry
    return out


# --- the recommended ranking ------------------------------------------------------------
#
# detect.recommend.rule names the rule; the development cells (detect.development_seeds) are
# the only cells it reads labels (flipped flags) of. The held-out cells measure it.
#
# - best_mean: the ranking (random excluded) with the highest mean AUROC over the development
#   cells; rankings within AUROC_TIE of that mean are tied, and the tie goes to the highest
#   mean average precision (then the name).
# - noise_structure: every cell's noise is classified without ground truth, from cleanlab's
#   confident joint on its out-of-fold probabilities (record["noise_structure"],
#   sampleval.detection.oof.noise_structure), into STRUCTURES (structure_class). For each
#   class, the ranking with the least regret over the development cells of that class
#   (least_regret: the smallest worst-case shortfall from the cell's best ranking in units
#   of the AIM, max(AUROC shortfall / 0.01, AP shortfall / 0.05)); a data set (a cell) gets
#   the choice of its own class (least regret over all development cells when no
#   development cell has its class). The recommended ranking of the pipeline's data is the
#   choice for the class of the sweep cell whose data is the pipeline's (pipeline_cell),
#   else the choice over all development cells.
AUROC_TIE = 0.001
CONCENTRATED = 0.7  # source_concentration at or above: each true class goes mostly to one wrong label (development cells: uniform <= 0.48, asym-20 0.95, 9->4 1.0)
ONE_PAIR = 0.5      # top_pair_share at or above: one class pair holds most of the wrong labels
STRUCTURES = ("uniform", "one pair", "several pairs")
AIM = {"auroc": 0.01, "average_precision": 0.05}  # within this of the cell's best ranking


def structure_class(ns: dict) -> str:
    """``uniform`` | ``one pair`` | ``several pairs`` from a cell's ``noise_structure``."""
    if ns["source_concentration"] < CONCENTRATED:
        return "uniform"
    return "one pair" if ns["top_pair_share"] >= ONE_PAIR else "several pairs"


def best_mean(records: dict, cells: list[tuple], rankings: list[str]) -> tuple[str, dict]:
    """The best_mean rule on ``cells``: ``(ranking, {ranking: {auroc_mean, average_precision_mean}})``."""
    means = {r: {m: float(np.mean([records[c]["rankings"][r][m] for c in cells])) for m in ("auroc", "average_precision")}
             for r in rankings if r != "random"}
    top = max(v["auroc"] for v in means.values())
    tied = [r for r, v in means.items() if v["auroc"] >= top - AUROC_TIE]
    return max(tied, key=lambda r: (means[r]["average_precision"], r)), means


def shortfalls(record: dict, rankings: list[str]) -> dict[str, tuple[float, float]]:
    """Per ranking (random excluded), ``(AUROC shortfall, AP shortfall)`` from the cell's best."""
    r = record["rankings"]
    cand = [x for x in rankings if x != "random"]
    best = {m: max(r[x][m] for x in cand) for m in ("auroc", "average_precision")}
    return {x: (best["auroc"] - r[x]["auroc"], best["average_precision"] - r[x]["average_precision"]) for x in cand}


def least_regret(records: dict, cells: list[tuple], rankings: list[str]) -> tuple[str, dict]:
    """The ranking with the smallest worst-case regret over ``cells``, regret = max(AUROC
    shortfall / AIM auroc, AP shortfall / AIM ap) (<= 1: within the aim); ties: the mean
    regret, then the name. ``(ranking, {ranking: {worst, mean}})``."""
    per = [shortfalls(records[c], rankings) for c in cells]
    regret = {x: [max(sf[x][0] / AIM["auroc"], sf[x][1] / AIM["average_precision"]) for sf in per] for x in per[0]}
    table = {x: {"worst": float(max(v)), "mean": float(np.mean(v))} for x, v in regret.items()}
    return min(table, key=lambda x: (table[x]["worst"], table[x]["mean"], x)), table


def choose(records: dict, dev_cells: list[tuple], rankings: list[str], rule: str) -> dict:
    """What ``rule`` learns on the development cells: the overall choice and, for
    noise_structure, the choice per structure class."""
    if rule not in RULES:
        raise ValueError(f"detect.recommend.rule = {rule!r} is not a rule; use one of {', '.join(RULES)}")
    if not dev_cells:
        raise ValueError("no development cells: detect.development_seeds names none of detect.seeds")
    if rule == "best_mean":
        overall, means = best_mean(records, dev_cells, rankings)
        return {"rule": rule, "overall": overall, "development_means": means}
    overall, regret = least_regret(records, dev_cells, rankings)
    out = {"rule": rule, "overall": overall, "development_regret": regret}
    by: dict = {}
    for c in dev_cells:
        by.setdefault(structure_class(records[c]["noise_structure"]), []).append(c)
    out["by_structure"] = {k: {"ranking": least_regret(records, by[k], rankings)[0], "cells": [cell_name(*c) for c in by[k]]}
                           for k in STRUCTURES if k in by}
    return out


def chosen_for(choice: dict, record: dict) -> tuple[str, str]:
    """The ranking ``choice`` gives a cell (its record), and how it was chosen."""
    if choice["rule"] == "best_mean":
        return choice["overall"], "best mean AUROC over the development cells"
    k = structure_class(record["noise_structure"])
    if k in choice["by_structure"]:
        return choice["by_structure"][k]["ranking"], f"noise structure '{k}' (confident joint); least regret over the development cells of that structure"
    return choice["overall"], f"noise structure '{k}', which no development cell has; least regret over all development cells"


def pipeline_cell(params: Params, settings: list[str], seeds: list[int]) -> tuple[str, int] | None:
    """The sweep cell whose data is the pipeline's own (digits, the same noise, noise draw and
    seed: :mod:`.cell`), or None (other data, other noise)."""
    noise, seed = params.noise, int(params.seed)
    if params.data.source != "digits" or noise.kind == "none" or list(noise.splits) != ["train"]:
        return None
    for s in settings:
        spec = params.detect.settings[s]
        same = spec["kind"] == noise.kind and abs(float(spec["rate"]) - float(noise.rate)) < 1e-12 \
            and (spec["kind"] == "uniform" or [list(p) for p in spec.get("pairs") or []] == [list(p) for p in noise.pairs])
        if same and seed in seeds and (spec.get("noise_seed") is None or int(spec["noise_seed"]) == seed):
            return s, seed
    return None


def recommend(records: dict, settings: list[str], seeds: list[int], rankings: list[str], rule: str,
              development_seeds: list[int], target: tuple[str, int] | None = None) -> dict:
    """The recommended ranking (``ranking``: for the pipeline's data, the cell ``target``) and,
    per cell, the ranking the rule gives it against the cell's best ranking and cleanlab."""
    dev_cells = [(s, seed) for s in settings for seed in seeds if seed in development_seeds]
    choice = choose(records, dev_cells, rankings, rule)
    cells = {}
    for s in settings:
        for seed in seeds:
            rec = records[(s, seed)]
            r = rec["rankings"]
            pick, _ = chosen_for(choice, rec)
            cand = [x for x in rankings if x != "random"]
            best_auc = max(cand, key=lambda x: (r[x]["auroc"], x))
            best_ap = max(cand, key=lambda x: (r[x]["average_precision"], x))
            entry = {"ranking": pick, "auroc": r[pick]["auroc"], "average_precision": r[pick]["average_precision"],
                     "best_auroc_ranking": best_auc, "auroc_shortfall": r[best_auc]["auroc"] - r[pick]["auroc"],
                     "best_ap_ranking": best_ap, "ap_shortfall": r[best_ap]["average_precision"] - r[pick]["average_precision"],
                     "cleanlab_auroc": r["cleanlab"]["auroc"], "diff": r[pick]["auroc"] - r["cleanlab"]["auroc"],
                     "development": seed in development_seeds}
            if "noise_structure" in rec:
                entry["structure"] = structure_class(rec["noise_structure"])
            entry["within_aim"] = entry["auroc_shortfall"] <= AIM["auroc"] and entry["ap_shortfall"] <= AIM["average_precision"]
            cells[cell_name(s, seed)] = entry

    def part(dev: bool) -> dict:
        chosen = {k: v for k, v in cells.items() if v["development"] == dev}
        short = [k for k, v in chosen.items() if v["diff"] < 0]
        worst_auc = max(chosen, key=lambda k: chosen[k]["auroc_shortfall"], default=None)
        worst_ap = max(chosen, key=lambda k: chosen[k]["ap_shortfall"], default=None)
        return {"n_cells": len(chosen), "n_at_least_cleanlab": len(chosen) - len(short), "below_cleanlab": short,
                "min_diff": float(min((v["diff"] for v in chosen.values()), default=np.nan)),
                "n_within_aim": sum(v["within_aim"] for v in chosen.values()), "outside_aim": [k for k, v in chosen.items() if not v["within_aim"]],
                "max_auroc_shortfall": {"cell": worst_auc, "value": chosen[worst_auc]["auroc_shortfall"]} if worst_auc else None,
                "max_ap_shortfall": {"cell": worst_ap, "value": chosen[worst_ap]["ap_shortfall"]} if worst_ap else None}

    if target is not None:
        ranking, how = chosen_for(choice, records[target])
        how = f"{how}; the pipeline's data is cell {cell_name(*target)}"
    else:
        crit = "best mean AUROC" if rule == "best_mean" else "least regret"
        ranking, how = choice["overall"], f"{crit} over all development cells (no sweep cell has the pipeline's data)"
    return {"ranking": ranking, "rule": rule, "how": how, "target_cell": cell_name(*target) if target else None,
            "aim": AIM, "choice": choice, "development": part(True), "held_out": part(False), "cells": cells}


def recommended_ranking(summary: dict) -> str:
    """The recommended ranking's name (a ranking column of the detection cells: an estimator
    or a key of ``detect.combinations``) from metrics/detection/summary.json."""
    return summary["recommended"]["ranking"]


def recommended_by_setting(summary: dict) -> dict[str, str]:
    """Per setting, the ranking the rule gives its cells (the most frequent, first on ties):
    what the curves highlight (with noise_structure, uniform and class-pair settings differ)."""
    out: dict[str, str] = {}
    for s in summary["table"]:
        given = [v["ranking"] for c, v in summary["recommended"]["cells"].items() if c.rsplit("-s", 1)[0] == s]
        out[s] = max(dict.fromkeys(given), key=given.count)
    return out


def per_kind_advice(records: dict, settings_spec: dict, settings: list[str], seeds: list[int], rankings: list[str]) -> dict:
    """For each kind of noise, the ranking with the best lowest per-cell AUROC over its cells
    (excluding random), that cell, and cleanlab's lowest per-cell AUROC next to it."""
    kinds: dict[str, list[str]] = {}
    for s in settings:
        kinds.setdefault(noise_kind(settings_spec[s]), []).append(s)
    out = {}
    for kind, names in kinds.items():
        worst = {r: min((records[(s, seed)]["rankings"][r]["auroc"], cell_name(s, seed)) for s in names for seed in seeds)
                 for r in rankings if r != "random"}
        best = max(worst, key=lambda r: (worst[r][0], r))
        out[kind] = {"settings": names, "best": best, "best_worst_auroc": worst[best][0], "best_worst_cell": worst[best][1],
                     "cleanlab_worst_auroc": worst["cleanlab"][0], "cleanlab_worst_cell": worst["cleanlab"][1],
                     "worst_auroc_by_ranking": {r: {"auroc": v[0], "cell": v[1]} for r, v in sorted(worst.items(), key=lambda kv: -kv[1][0])}}
    return out


def stability(records: dict, tables: dict, setting: str, seeds: list[int], rankings: list[str], share: float = 0.05) -> dict:
    """Across baseline seeds of one setting: AUROC mean/min/max and the Jaccard overlap of the
    top ``share`` between every pair of seeds (mean and min)."""
    out = {"setting": setting, "seeds": list(seeds), "top_share": share, "rankings": {}}
    for r in rankings:
        auc = np.array([records[(setting, s)]["rankings"][r]["auroc"] for s in seeds])
        jac = [jaccard_top(tables[(setting, a)]["sample_id"], tables[(setting, a)][r], tables[(setting, b)]["sample_id"], tables[(setting, b)][r], share)
               for a, b in pairs_of(seeds, 2)]
        out["rankings"][r] = {"auroc_mean": float(auc.mean()), "auroc_min": float(auc.min()), "auroc_max": float(auc.max()),
                              "top5_jaccard_mean": float(np.mean(jac)) if jac else None, "top5_jaccard_min": float(np.min(jac)) if jac else None}
    return out


def curves(tables: dict, settings: list[str], seeds: list[int], rankings: list[str]) -> tuple[dict, dict]:
    """Per setting, mean over seeds: inspection curves (wide: inspected, <ranking>...) and
    threshold curves (wide: threshold, <ranking>_found, <ranking>_fpr)."""
    insp, thr = {}, {}
    for s in settings:
        grid = None
        cols, tcols = {}, {"threshold": THRESHOLDS}
        for r in rankings:
            ys, fs, ps = [], [], []
            for seed in seeds:
                t = tables[(s, seed)]
                flipped = t["flipped"].to_numpy(bool)
                grid, y = inspection_curve(flipped, t[r].to_numpy())
                ys.append(y)
                c = threshold_curve(flipped, t[r].to_numpy())
                fs.append(c["found"])
                ps.append(c["fpr"])
            cols[r] = np.mean(ys, axis=0)
            tcols[f"{r}_found"], tcols[f"{r}_fpr"] = np.mean(fs, axis=0), np.mean(ps, axis=0)
        insp[s] = pd.DataFrame({"inspected": grid, **cols}).round(5)
        thr[s] = pd.DataFrame(tcols).round(5)
    return insp, thr


def summarise(cell_dir, settings: list[str], seeds: list[int], det: DetectParams, development_seeds: list[int], record_dir=None,
              target: tuple[str, int] | None = None) -> tuple[dict, dict, dict]:
    """The summary of the cells ``settings x seeds``; ``target``: the cell whose data is the
    pipeline's (:func:`pipeline_cell`), for the recommendation."""
    records, tables = load_cells(cell_dir, settings, seeds, record_dir)
    rankings = ranking_names(tables)
    rule = det.recommend.rule
    if rule == "noise_structure":
        lacking = [cell_name(*c) for c, r in records.items() if "noise_structure" not in r]
        if lacking:
            raise ValueError(f"detect.recommend.rule = noise_structure needs the cells' noise_structure, which {lacking[:3]} lack; rerun `dvc repro detect`")
    table = sweep_table(records, settings, seeds, rankings)
    summary = {
        "settings": {s: {**det.settings[s], "kind": noise_kind(det.settings[s])} for s in settings},
        "seeds": list(seeds),
        "development_seeds": [s for s in seeds if s in development_seeds],
        "held_out_seeds": [s for s in seeds if s not in development_seeds],
        "rankings": rankings,
        "n_flipped": {s: [records[(s, seed)]["n_flipped"] for seed in seeds] for s in settings},
        "baseline_test_accuracy": {s: float(np.mean([records[(s, seed)]["baseline"]["test_accuracy"] for seed in seeds])) for s in settings},
        "recommended": recommend(records, settings, seeds, rankings, rule, development_seeds, target),
        "advice": per_kind_advice(records, det.settings, settings, seeds, rankings),
        "cleanlab_find_label_issues": {s: {k: float(np.nanmean([records[(s, seed)]["cleanlab_find_label_issues"][k] for seed in seeds])) for k in ("n_flagged", "precision", "recall", "fpr")} for s in settings},
        "table": table,
    }
    paper = [s for s in settings if det.settings[s]["kind"] == "pairwise" and det.settings[s].get("pairs") == [[9, 4]] and abs(det.settings[s]["rate"] - 0.2) < 1e-9]
    if paper:
        s = paper[0]
        summary["paper_setting"] = {"setting": s, "paper": PAPER, "threshold": 0.5,
                                    "rankings": {r: {"found": table[s][r]["found_at_threshold_0.5_mean"], "fpr": table[s][r]["fpr_at_threshold_0.5_mean"]} for r in rankings}}
    stab = det.stability_setting
    if stab in settings and len(seeds) >= 2:
        summary["stability"] = stability(records, tables, stab, seeds, rankings)
    insp, thr = curves(tables, settings, seeds, rankings)
    return summary, insp, thr


def long_csv(summary: dict) -> pd.DataFrame:
    rows = []
    for s, by_r in summary["table"].items():
        for r, entry in by_r.items():
            for m in HEADLINE:
                rows.append({"setting": s, "ranking": r, "metric": m, "mean": round(entry[f"{m}_mean"], 5), "sd": round(entry[f"{m}_sd"], 5), "n_seeds": len(summary["seeds"])})
    return pd.DataFrame(rows)


def summarise_to(cell_dir, out_dir, settings, seeds, det, development_seeds, target=None) -> dict:
    """Everything :func:`summarise` computes, written under ``out_dir`` (the sweep script)."""
    from sampleval.detection.summary_figures import plot_curves
    from sampleval.detection.summary_markdown import markdown
    from sampleval.io import write_json, write_text

    out_dir = Path(out_dir)
    summary, insp, thr = summarise(cell_dir, settings, seeds, det, development_seeds, target=target)
    write_json(out_dir / "summary.json", summary)
    write_text(out_dir / "summary.md", markdown(summary))
    write_text(out_dir / "summary.csv", long_csv(summary).to_csv(index=False))
    for s in settings:
        write_text(out_dir / f"curves-{s}.csv", insp[s].to_csv(index=False))
        write_text(out_dir / f"thresholds-{s}.csv", thr[s].to_csv(index=False))
    plot_curves(insp, thr, recommended_by_setting(summary), out_dir / "curves.png", out_dir / "thresholds.png")
    return summary
