"""report.md, generated from the metrics files: every number in it comes from a run.

The report is a list of sections (:data:`SECTIONS`), one function each, taking the
:class:`ReportInputs` and returning its lines. To add a section, write a function and
insert it in :data:`SECTIONS`; a section whose metrics are absent returns ``[]``. A
section's figures are linked under it (:data:`FIGURES`, when the PNG exists).

:func:`headline` condenses the run into about ten numbers (``metrics/headline.json``),
and the report's first line says them in words. :func:`render_html` turns the same
Markdown into one self-contained HTML file (figures embedded as data URIs).
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from .cells import STRIP_RATIO, CellKey, composition, stripped_classes


def _fmt(x, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        if x != x:
            return "n/a"
        return f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{digits}f}"
    return str(x)


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


@dataclass
class ReportInputs:
    train: dict
    influence: dict
    stats: dict
    params: dict
    fidelity: dict | None = None
    cells: dict = field(default_factory=dict)  # CellKey -> cell record (sampleval.cells.load_cells)
    extra: dict = field(default_factory=dict)  # other sections' metrics, by name
    figures: frozenset = frozenset()  # the PNGs that exist (paths relative to the report), linked under their section


# --- headline: about ten numbers for `dvc exp show` / `dvc metrics diff` and the report's first line ---

def matching_cell(records: list[dict], noise: dict, seed: int) -> dict | None:
    """The detection-sweep cell that is the main run itself: the same noise (kind, rate,
    pairs, training split only) drawn with the same seed, and the baseline trained with the
    same seed (:mod:`sampleval.detection.cell`: cell s = 0 of the default setting is the
    default pipeline). ``None`` when the sweep has no such cell (own data, another noise)."""
    for rec in records:
        n = rec.get("noise", {})
        if (rec.get("seed") == seed and n.get("kind") == noise["kind"] and n.get("rate") == noise["rate"]
                and [list(p) for p in n.get("pairs") or []] == [list(p) for p in noise.get("pairs") or []]
                and noise.get("splits", ["train"]) == ["train"] and n.get("noise_seed") in (None, seed)):
            return rec
    return None


def best_comparison(stats: dict) -> dict | None:
    """The distinct subset comparison (strategy vs its random control) with the largest mean difference."""
    rows = [r for r in (stats or {}).get("comparisons", {}).values() if not r.get("same_as")]
    return max(rows, key=lambda r: (r["mean_diff"], -r["p_bh"], r["name"]), default=None)


def _recommended(inp: ReportInputs) -> tuple[str | None, str | None, dict | None]:
    """(recommended ranking, its sweep setting, the main run's sweep cell)."""
    det = inp.extra.get("detection") or {}
    rec = (det.get("recommended") or {}).get("ranking")
    cell = matching_cell(inp.extra.get("detection_cells") or [], inp.params["noise"], inp.params["seed"]) if "seed" in inp.params else None
    setting = cell["setting"] if cell else inp.params.get("detect", {}).get("stability_setting")
    if setting not in det.get("table", {}):
        setting = next(iter(det.get("table", {})), None)
    return rec, setting, cell


def _num(x):
    return None if x is None else round(float(x), 4)


def headline(inp: ReportInputs) -> dict:
    """About ten numbers that say what a run found (``metrics/headline.json``); ``None`` where
    the run has no such number. Keys:

    - ``test_accuracy``: the baseline's test accuracy (metrics/train.json);
    - ``n_flipped``: labels flipped by noise injection in the training split;
    - ``flips_top5``: of those, how many the recommended ranking (chosen by detect-summary) puts in
      its top 5 %, on the main run's data: from the suspects table (data/label_issues.parquet),
      else from the detection sweep's cell that is the main run (same noise, noise draw and seed:
      :func:`matching_cell`), ``None`` without either;
    - ``rec_auroc``, ``rec_ap``: the recommended ranking's detection AUROC and average precision,
      mean over the sweep's seeds at that cell's setting (metrics/detection/summary.json);
    - ``best_diff``, ``best_q``, ``best_min_p``: the subset strategy with the largest mean
      difference from its random control (:func:`best_comparison`, metrics/stats.json, in the
      stats metric's units), its Benjamini-Hochberg q and the exact test's minimum attainable p;
    - ``best_vs_matched_diff``, ``best_vs_matched_q``: the same strategy against its class-matched
      random control (same size and class composition; global variant only, else ``None``);
    - ``refine_gain``, ``refine_q``: refinement's test-accuracy difference from random removal
      after the last round, and its q (metrics/refine.json);
    - ``lds_best``: the best linear datamodeling score of any estimator (metrics/fidelity.json).
    """
    out = {"test_accuracy": _num(inp.train.get("test", {}).get("accuracy")), "n_flipped": inp.influence.get("n_flipped")}
    det = inp.extra.get("detection") or {}
    rec, setting, cell = _recommended(inp)
    top5 = (inp.extra.get("suspects") or {}).get("found_top5")
    if top5:  # the main run's own suspects table (data/label_issues.parquet), ranked by the recommendation
        out["flips_top5"] = top5["found"]
    else:
        found = ((cell or {}).get("rankings", {}).get(rec) or {}).get("found_top_5pct") if rec else None
        out["flips_top5"] = None if found is None else int(round(found * cell["n_flipped"]))
    entry = det.get("table", {}).get(setting, {}).get(rec, {}) if rec else {}
    out["rec_auroc"], out["rec_ap"] = _num(entry.get("auroc_mean")), _num(entry.get("average_precision_mean"))
    best = best_comparison(inp.stats)
    out["best_diff"] = _num(best and best["mean_diff"])
    out["best_q"] = _num(best and best["p_bh"])
    out["best_min_p"] = _num(best and best["min_attainable_p"])
    matched = (inp.stats or {}).get("class_matched", {}).get(best["name"]) if best else None
    out["best_vs_matched_diff"] = _num(matched and matched["mean_diff"])
    out["best_vs_matched_q"] = _num(matched and matched["p_bh"])
    ref = inp.extra.get("refine") or {}
    last = ref.get("tests", {}).get("test_accuracy", {}).get(f"round_{ref.get('rounds')}", {})
    out["refine_gain"], out["refine_q"] = _num(last.get("mean_diff")), _num(last.get("p_bh"))
    lds = [v["lds"] for v in (inp.fidelity or {}).get("network", {}).values() if isinstance(v, dict) and v.get("lds") is not None]
    out["lds_best"] = _num(max(lds)) if lds else None
    return out


def _points(diff: float) -> str:
    return f"{100 * diff:+.1f} points"


def _strategy_words(r: dict) -> str:
    frac = _pct(r["fraction"])
    how = {"remove-harmful": f"removing the {frac} most harmful", "remove-helpful": f"removing the {frac} most helpful",
           "select-helpful": f"keeping only the {frac} most helpful"}.get(r["strategy_name"], f"`{r['strategy_name']}` at {frac}")
    return f"{how} training samples by `{r['ranking']}` ({r['variant']})"


def _matched_words(inp: ReportInputs, best: dict) -> str:
    """How the best strategy fares against its class-matched control: whether its gain is more than thinning classes."""
    m = (inp.stats or {}).get("class_matched", {}).get(best["name"])
    if m is None:
        return ""
    alpha = inp.stats.get("alpha", 0.05)
    verdict = "so more than the thinning of its classes" if m["p_bh"] <= alpha and m["mean_diff"] > 0 else \
        "so not distinguishable from thinning the same classes"
    return (f", and by {_points(m['mean_diff'])} against random samples of the same classes (q {_fmt(m['p_bh'])}), {verdict}")


def finding(inp: ReportInputs) -> str:
    """The report's first line: what the run found, in words, from :func:`headline`'s numbers."""
    h = headline(inp)
    parts = []
    rec, setting, _ = _recommended(inp)
    if h["n_flipped"] and h["flips_top5"] is not None:
        parts.append(f"Found {h['flips_top5']} of the {h['n_flipped']} injected label flips in the top 5 % of the recommended "
                     f"ranking `{rec}`" + (f" (AUROC {_fmt(h['rec_auroc'], 3)}, mean over the sweep's seeds at `{setting}`)" if h["rec_auroc"] is not None else ""))
    elif h["n_flipped"]:
        parts.append(f"{h['n_flipped']} labels were flipped by noise injection")
    else:
        parts.append("No label noise was injected (`noise.kind` none), so no flip can be counted")
    best = best_comparison(inp.stats)
    if best is not None:
        metric = inp.stats["metric"].split(".")[-1]
        control = "random removal" if best["strategy_name"].startswith("remove") else "random selection"
        parts.append(f"{_strategy_words(best)} changes test {metric} by {_points(best['mean_diff'])} against {control} "
                     f"of the same size (BH q {_fmt(best['p_bh'])}, {best.get('n_seeds', inp.stats.get('n_seeds'))} seeds)"
                     + _matched_words(inp, best))
    if h["refine_gain"] is not None:
        ref = inp.extra["refine"]
        parts.append(f"after {ref['rounds']} rounds of refinement by `{ref['ranking']}`, test accuracy differs from random removal by "
                     f"{_points(h['refine_gain'])} (q {_fmt(h['refine_q'])})")
    return "; ".join(parts) + "."


def section_header(inp: ReportInputs) -> list[str]:
    p = inp.params
    noise = p["noise"]
    sub = p["subsets"]
    return [
        "# Sample valuation report",
        "",
        f"**{finding(inp)}**",
        "",
        "Generated by `python -m stages.report` from `metrics/*.json` (the headline numbers: `metrics/headline.json`); "
        "do not edit by hand.",
        "",
        f"Data: `{p['data']['source']}`, "
        + (f"noise `{noise['kind']}` at rate {noise['rate']}" if noise["kind"] != "none" else "no injected label noise")
        + (f" (pairs {noise['pairs']})" if noise["kind"] == "pairwise" else "")
        + f"; model `{p['model']['name']}`, {p['train']['epochs']} epochs; subset rankings "
        + ", ".join(f"`{s}`" for s in sub["scores"])
        + f"; variants {', '.join(sub['variants'])}."
        + (" The label-error detection sweep below is a benchmark on the embedded digits with injected noise, not on this data."
           if p["data"]["source"] != "digits" else ""),
        "",
    ]


def section_baseline(inp: ReportInputs) -> list[str]:
    lines = [
        "## Baseline (best epoch chosen on validation)",
        "",
        "| split | accuracy | macro F1 | macro AUROC | ECE |",
        "|---|---|---|---|---|",
    ]
    for split in ("val", "test"):
        m = inp.train[split]
        lines.append(f"| {split} | {_fmt(m['accuracy'])} | {_fmt(m['macro_f1'])} | {_fmt(m['macro_auroc'])} | {_fmt(m['ece'])} |")
    return lines + ["", f"Best epoch: {inp.train['best_epoch']}.", ""]


def section_influence(inp: ReportInputs) -> list[str]:
    influence = inp.influence
    lines = ["## Influence", ""]
    if "agreement" in influence:
        a = influence["agreement"]
        lines += [
            f"Our fast TracIn (`{inp.params['influence']['tracin_method']}` directional derivatives) against Captum's "
            f"TracInCP on the same checkpoints: Spearman {_fmt(a['spearman'])}, Pearson {_fmt(a['pearson'])}, largest "
            f"difference {a['max_rel_error']:.1e} of the largest score.",
            "",
        ]
    n_flipped = influence.get("n_flipped", 0)
    lines += [f"{n_flipped} of {influence['n_train']} training labels were flipped by noise injection.", ""]
    if n_flipped:
        lines += [
            "| ranking | flipped found in top n_flipped | found inspecting 5 % | 10 % | 20 % | detection AUROC | S-shapedness |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, entry in influence.items():
            if isinstance(entry, dict) and "detect" in entry:
                d = entry["detect"]
                lines.append(
                    f"| {name} | {_fmt(d['found_in_top_n_flipped'])} | {_fmt(d['found_inspecting_5pct'])} | "
                    f"{_fmt(d['found_inspecting_10pct'])} | {_fmt(d['found_inspecting_20pct'])} | {_fmt(d['auroc'])} | {_fmt(entry.get('s_shapedness'))} |"
                )
        lines.append("")
    return lines


def section_fidelity(inp: ReportInputs) -> list[str]:
    if not inp.fidelity:
        return []
    from .fidelity_report import render_table

    return ["## Fidelity: predicted influence against actual retraining", "", render_table(inp.fidelity), ""]


def _stripped(inp: ReportInputs, row: dict) -> list[dict] | None:
    key = CellKey(row["ranking"], row["variant"], row["strategy_name"], row["fraction"])
    return stripped_classes(inp.cells[key]) if key in inp.cells else None


def _stripped_text(stripped: list[dict], direction: str) -> str:
    verb = "removed" if direction == "remove" else "selected"
    return ", ".join(
        f"{s['class']} ({_pct(s['rate'])} {verb} vs {_pct(s['average_rate'])}"
        + (f", {s['strip_ratio']:.1f}x" if s["strip_ratio"] != float("inf") else ": none kept")
        + (f"; {s['chosen_flipped']:g} of its {s['chosen']:g} {verb} carry a flipped label" if s["chosen_flipped"] else "")
        + ")"
        for s in stripped
    )


def _tested_on(stats: dict) -> str:
    if stats.get("tested_on") == "correct counts":
        return "the integer correct-counts (accuracy differences are counts out of the test set; ties exact)"
    return "the unrounded per-seed values"


def section_subsets(inp: ReportInputs) -> list[str]:
    stats = inp.stats
    metric = stats["metric"]
    lines = [
        f"## Retraining on subsets: test {metric.split('.')[-1]} against the random control",
        "",
        f"{stats['n_seeds']} seeds per cell; exact paired test (signed-rank statistic over all 2^n sign flips of the "
        f"per-seed differences, exact with ties and zeros) on {_tested_on(stats)}; Benjamini-Hochberg over the {stats['n_comparisons']} distinct "
        f"comparisons of {stats['n_rows']} rows; alpha {stats['alpha']}. The minimum attainable p is that of the test "
        "used, from the number of non-zero differences. Control: `random` = the same number of random samples (per class "
        "for stratified cells); `class-matched` = random samples with the class composition (by given label) of the "
        "strategy's set, same size and seeds.",
        "",
        "| ranking | variant | strategy | fraction | control | strategy mean | control mean | median diff [95 % CI] | d_z | p | BH q | min attainable p | significant | same subsets as |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in list(stats["comparisons"].values()) + list(stats.get("class_matched", {}).values()):
        lines.append(
            f"| {r['ranking']} | {r['variant']} | {r['strategy_name']} | {r['fraction']} | {r.get('control_kind', 'random')} | "
            f"{_fmt(r['strategy_mean'])} | {_fmt(r['control_mean'])} | "
            f"{_fmt(r['median_diff'])} [{_fmt(r['median_diff_ci_low'])}, {_fmt(r['median_diff_ci_high'])}] | {_fmt(r['cohen_dz'], 3)} | "
            f"{_fmt(r['p'])} | {_fmt(r['p_bh'])} | {_fmt(r['min_attainable_p'])} | {'yes' if r['significant'] else 'no'} | {r['same_as'] or ''} |"
        )
    same = [r for r in list(stats["comparisons"].values()) + list(stats.get("class_matched", {}).values()) if r["same_as"]]
    if same:
        lines += ["", "Coinciding cells (the same ids trained on for every seed, strategy and control): "
                  + "; ".join(f"`{r['name']}` = `{r['same_as']}`" for r in same) + ". BH counts each once."]
    if stats["warnings"]:
        lines += ["", "Warnings: " + "; ".join(stats["warnings"])]
    return lines + [""]


def section_composition(inp: ReportInputs) -> list[str]:
    if not inp.cells:
        return []
    first = next(iter(inp.cells.values()))
    classes = list(first["train_class_composition"])
    lines = [
        "## Class composition of the removed / selected sets",
        "",
        "Each class's share (%) of the removed (remove-*) or selected (select-*) samples, mean over seeds, against "
        "its share of the full training set (first row). **Bold**: the class is hit more than "
        f"{STRIP_RATIO:g}x harder than average (removed at more than twice the average rate, or selected at less "
        "than half of it). Figure: `plots/composition.png`.",
        "",
        "| cell | n chosen | " + " | ".join(classes) + " |",
        "|---|---|" + "---|" * len(classes),
        "| full training set | " + str(first["n_train"]) + " | "
        + " | ".join(f"{100 * first['train_class_composition'][c] / first['n_train']:.1f}" for c in classes) + " |",
    ]
    for key, cell in inp.cells.items():
        rows = {r["class"]: r for r in composition(cell)}
        n_chosen = sum(s["n_chosen"] for s in cell["seeds"].values()) / len(cell["seeds"])
        shares = [(f"**{100 * rows[c]['chosen_share']:.1f}**" if rows[c]["stripped"] else f"{100 * rows[c]['chosen_share']:.1f}") for c in classes]
        lines.append(f"| {key.name} | {_fmt(float(n_chosen), 1) if n_chosen % 1 else int(n_chosen)} | " + " | ".join(shares) + " |")
    return lines + [""]


def _verdict(r: dict, alpha: float) -> str:
    if not r["significant"]:
        return "not distinguishable from random"
    return "better than random" if r["mean_diff"] > 0 else "worse than random"


def _matched_verdict(r: dict, m: dict | None, inp: ReportInputs) -> str:
    """What the class-matched control says of a strategy: the samples chosen, or only their classes."""
    if m is None:
        return "n/a (stratified: its random control keeps the class shares)" if r["variant"] == "stratified" else "n/a"
    remove = r["strategy_name"].startswith("remove")
    own, theirs = _flipped_counts(inp, r), _flipped_counts(inp, m)
    if m["significant"] and m["mean_diff"] > 0:
        if remove and own is not None and theirs is not None and own > theirs:
            return (f"wrong labels removed: beats removing as many random samples of the same classes "
                    f"({own:g} vs {theirs:g} flipped labels in the set)")
        return f"the samples {'removed' if remove else 'selected'} matter, not only their classes: beats the class-matched control"
    if m["significant"]:
        return f"worse than {'removing' if remove else 'selecting'} as many random samples of the same classes"
    if r["significant"]:
        return (f"class {'thinned' if remove else 'composition'}: no better than {'removing' if remove else 'selecting'} as many "
                "random samples of the same classes")
    return "neither control distinguishable"


def section_answer(inp: ReportInputs) -> list[str]:
    stats = inp.stats
    alpha = stats["alpha"]
    rows = list(stats["comparisons"].values())
    matched = stats.get("class_matched", {})
    lines = [
        "## Answer",
        "",
        f"Every ranking x variant x fraction against its random control (significant: BH q <= {alpha}). A class-deletion "
        "confound is named where the removed or selected set hits a class more than "
        f"{STRIP_RATIO:g}x harder than average; then the difference may measure the lost class, not the samples' value. "
        "For global cells the class-matched control (as many random samples of the same classes, by given label, same "
        "seeds) tells the two apart: a strategy that beats it gains from the samples it chose (e.g. wrong labels removed), "
        "one that does not only from the classes it thinned.",
        "",
        "| ranking | variant | strategy | fraction | answer | strategy mean | random mean | p | BH q | min attainable p | d_z | median diff [95 % CI] "
        "| flipped in the set | class composition | vs class-matched control: diff, p, BH q, min attainable p | class-matched control says |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    confounded, explained = [], []
    for r in rows:
        stripped = _stripped(inp, r)
        direction = r["strategy_name"].split("-")[0]
        comp = "n/a" if stripped is None else ("class-deletion confound: " + _stripped_text(stripped, direction)) if stripped else "no class stripped"
        m = matched.get(r["name"])
        beats_matched = bool(m and m["significant"] and m["mean_diff"] > 0)
        if stripped and r["significant"] and not r["same_as"]:
            (explained if beats_matched else confounded).append(r["name"])
        flipped = _flipped_in_chosen(inp, r)
        vs = "n/a" if m is None else f"{_fmt(m['mean_diff'])}, p {_fmt(m['p'])}, q {_fmt(m['p_bh'])}, min p {_fmt(m['min_attainable_p'])}"
        lines.append(
            f"| {r['ranking']} | {r['variant']} | {r['strategy_name']} | {r['fraction']} | {_verdict(r, alpha)} | "
            f"{_fmt(r['strategy_mean'])} | {_fmt(r['control_mean'])} | {_fmt(r['p'])} | {_fmt(r['p_bh'])} | {_fmt(r['min_attainable_p'])} | "
            f"{_fmt(r['cohen_dz'], 3)} | {_fmt(r['median_diff'])} [{_fmt(r['median_diff_ci_low'])}, {_fmt(r['median_diff_ci_high'])}] | "
            f"{flipped} | {comp} | {vs} | {_matched_verdict(r, m, inp)} |"
        )
    distinct = [r for r in rows if not r["same_as"]]
    better = [r["name"] for r in distinct if r["significant"] and r["mean_diff"] > 0]
    worse = [r["name"] for r in distinct if r["significant"] and r["mean_diff"] < 0]
    lines += [
        "",
        f"Of {len(distinct)} distinct comparisons, {len(better)} are significantly better than random"
        + (f" ({', '.join(f'`{n}`' for n in better)})" if better else "")
        + f" and {len(worse)} significantly worse"
        + (f" ({', '.join(f'`{n}`' for n in worse)})" if worse else "")
        + "."
        + (f" {len(confounded)} of the significant ones come with a stripped class: {', '.join(f'`{n}`' for n in confounded)}"
           + (" (not beating the class-matched control)." if any(n in matched for n in confounded) else ".") if confounded else
           " None of the significant ones strips a class without beating its class-matched control." if explained else
           " None of the significant ones strips a class.")
        + (f" {len(explained)} strip a class but beat their class-matched control, so the lost class does not explain them: "
           f"{', '.join(f'`{n}`' for n in explained)}." if explained else ""),
    ]
    for r in better:
        m = matched.get(r)
        if m is not None:
            lines += ["", f"`{r}` against its class-matched control: {_fmt(m['mean_diff'])} (p {_fmt(m['p'])}, BH q {_fmt(m['p_bh'])}, "
                      f"min attainable p {_fmt(m['min_attainable_p'])}): {_matched_verdict(stats['comparisons'][r], m, inp)}."]
    n_flipped = inp.influence.get("n_flipped", 0)
    for ranking in inp.params["subsets"]["scores"]:
        detect = inp.influence.get(ranking, {}).get("detect")
        if detect and n_flipped:
            found = int(round(detect["found_in_top_n_flipped"] * n_flipped))
            lines += [
                "",
                f"The `{ranking}` ranking finds {found} of the {n_flipped} flipped labels among its {n_flipped} most suspicious "
                f"training samples, and {detect['found_inspecting_5pct']:.0%} of them within its most suspicious 5 % "
                f"(detection AUROC {detect['auroc']:.4f}).",
            ]
    return lines + [""]


def _flipped_counts(inp: ReportInputs, r: dict) -> float | None:
    """Mean number of flipped labels in the cell's chosen set (the strategy's or, for a class-matched row, its control's)."""
    name = r["control_name"] if r.get("control_kind") == "class-matched" else r["name"]
    key = next((k for k in inp.cells if k.name == name), None)
    if key is None:
        return None
    seeds = list(inp.cells[key]["seeds"].values())
    return sum(s["flipped_in_chosen"] for s in seeds) / len(seeds)


def _flipped_in_chosen(inp: ReportInputs, r: dict) -> str:
    key = CellKey(r["ranking"], r["variant"], r["strategy_name"], r["fraction"])
    cell = inp.cells.get(key)
    if cell is None:
        return "n/a"
    seeds = list(cell["seeds"].values())
    flipped = sum(s["flipped_in_chosen"] for s in seeds) / len(seeds)
    chosen = sum(s["n_chosen"] for s in seeds) / len(seeds)
    return f"{flipped:g} of {chosen:g}"


def section_score_shapes(inp: ReportInputs) -> list[str]:
    """The score-shapes stage's figures (README "Score shapes"); its numbers stay in metrics/score_shapes.json."""
    if not any(f in inp.figures for f in FIGURES["section_score_shapes"]):
        return []
    return ["## Score shapes over the detection sweep", "",
            "Sorted scores of the sweep's cells and where the flips sit; numbers: `metrics/score_shapes.json`.", ""]


# Each section's figures (relative to report.md), linked under the section when the PNG exists.
FIGURES = {
    "section_baseline": {"plots/train_curve.png": "Training curve (loss per epoch; the selected epoch marked)"},
    "section_influence": {"plots/influence_hist.png": "Distribution of the first ranking's scores",
                          "plots/sorted_scores.png": "Sorted scores (S-shape)",
                          "plots/detection.png": "Flipped labels found against samples inspected, per ranking",
                          "plots/explanations.png": "Misclassified test samples and their most helpful and harmful training samples"},
    "section_fidelity": {"plots/fidelity.png": "Predicted influence against actual retraining"},
    "section_subsets": {"plots/subsets.png": "Test metric per subset cell against the random control"},
    "section_composition": {"plots/composition.png": "Class composition of the removed / selected sets"},
    "section_detection": {"plots/detection/curves.png": "Detection curves per noise setting",
                          "plots/detection/thresholds.png": "Detection at score thresholds"},
    "section_refine": {"plots/refine.png": "Refinement rounds against random removal"},
    "section_corrections": {"plots/suspects.png": "The top suspects with their given and suggested labels"},
    "section_score_shapes": {"plots/score_shapes_sorted.png": "Sorted-score shapes over the sweep",
                             "plots/score_shapes_threshold.png": "Test accuracy against flip ratio"},
}


def figure_lines(inp: ReportInputs, section_name: str) -> list[str]:
    """Markdown image links (relative paths) to the section's figures that exist."""
    lines = [f"![{alt}]({path})" for path, alt in FIGURES.get(section_name, {}).items() if path in inp.figures]
    return lines + [""] if lines else []


def _range(lo, hi) -> str:
    return f"{_fmt(lo, 3)}-{_fmt(hi, 3)}" if lo != hi else _fmt(lo, 3)


def section_detection(inp: ReportInputs) -> list[str]:
    """The detection sweep (metrics/detection/summary.json): which ranking finds wrong labels
    for which kind of noise, across seeds, and whether a ranking's headline fails on a seed."""
    det = inp.extra.get("detection")
    if not det:
        return []
    settings, table = det["settings"], det["table"]
    rankings = [r for r in det["rankings"] if all(r in table[s] for s in settings)]
    lines = [
        "## Label-error detection across noise kinds and seeds",
        "",
        f"Detection AUROC for the flipped labels, mean ± sd over seeds {det['seeds']} (each cell: its own noise draw "
        "and baseline, one job of the `detect` stage per setting and seed); cleanlab on out-of-fold probabilities of the same model and recipe, "
        "`random` the chance line. Full table: `metrics/detection/summary.md`; curves: `plots/detection/`.",
        "",
        "| ranking | " + " | ".join(f"{s} ({settings[s]['kind']}, {settings[s]['rate']:g})" for s in settings) + " |",
        "|---|" + "---|" * len(settings),
    ]
    for r in rankings:
        lines.append(f"| {r} | " + " | ".join(f"{_fmt(table[s][r]['auroc_mean'], 3)} ± {_fmt(table[s][r]['auroc_sd'], 3)}" for s in settings) + " |")
    rec = det["recommended"]
    lines += ["", f"Recommended ranking `{rec['ranking']}`, chosen by the pipeline (rule `{rec.get('rule', '?')}`, on seeds "
              f"{det['development_seeds']} only): {rec.get('how', '')}. At least cleanlab's "
              f"AUROC in {rec['development']['n_at_least_cleanlab']} of {rec['development']['n_cells']} development cells and "
              f"{rec['held_out']['n_at_least_cleanlab']} of {rec['held_out']['n_cells']} held-out cells."]
    ho = rec["held_out"]
    if ho.get("max_auroc_shortfall"):
        lines[-1] += (f" Held out, the ranking the rule gives each cell is within {rec['aim']['auroc']} AUROC and "
                      f"{rec['aim']['average_precision']} AP of the cell's best ranking in {ho['n_within_aim']} of {ho['n_cells']} cells "
                      f"(largest shortfalls: AUROC {_fmt(ho['max_auroc_shortfall']['value'], 4)} at {ho['max_auroc_shortfall']['cell']}, "
                      f"AP {_fmt(ho['max_ap_shortfall']['value'], 3)} at {ho['max_ap_shortfall']['cell']}).")
    for kind, a in det["advice"].items():
        lines.append(f"- {kind} noise ({', '.join(a['settings'])}): best worst-case ranking `{a['best']}` "
                     f"(lowest per-cell AUROC {_fmt(a['best_worst_auroc'], 3)} at {a.get('best_worst_cell', '?')}; "
                     f"cleanlab {_fmt(a['cleanlab_worst_auroc'], 3)} at {a.get('cleanlab_worst_cell', '?')}).")
    stab = det.get("stability")
    if stab:
        lines += ["", f"Stability over baseline seeds {stab['seeds']} at `{stab['setting']}`: AUROC range and overlap (Jaccard) "
                  f"of the top {stab['top_share']:.0%} between seeds.", "",
                  "| ranking | AUROC min-max | top-5 % overlap, mean (min) |", "|---|---|---|"]
        for r, v in stab["rankings"].items():
            lines.append(f"| {r} | {_range(v['auroc_min'], v['auroc_max'])} | {_fmt(v['top5_jaccard_mean'], 2)} ({_fmt(v['top5_jaccard_min'], 2)}) |")
    weak = [
        f"`{r}` (AUROC {_fmt(min(table[s][r]['auroc_mean'] for s in settings), 3)} at "
        f"{min(settings, key=lambda s: table[s][r]['auroc_mean'])})"
        for r in rankings if r != "random" and min(table[s][r]["auroc_mean"] for s in settings) < 0.9
    ]
    if weak:
        lines += ["", "Headlines that do not hold everywhere: " + ", ".join(weak) + " rank the flips poorly in at least one "
                  "kind of noise; do not use them there."]
    return lines + [""]


def section_refine(inp: ReportInputs) -> list[str]:
    """The refinement loop (metrics/refine.json) against random removal of the same sizes."""
    ref = inp.extra.get("refine")
    if not ref:
        return []
    lines = [
        "## Refinement: remove the most harmful, retrain, repeat",
        "",
        f"{ref['rounds']} rounds removing {ref['n_remove_per_round']} samples each by `{ref['ranking']}`, against random "
        f"removal of the same sizes, {ref['n_seeds']} seeds (paired); DCS from `{ref['dcs_score']}`; held-out part of the "
        f"validation set ({ref['n_val_heldout']} samples) never used for scoring or selection. Exact paired test on "
        + ("the integer correct-counts" if ref["tests"]["test_accuracy"].get("round_1", {}).get("tested_on") == "correct counts" else "the per-seed values")
        + f", Benjamini-Hochberg over the {ref['rounds']} rounds.",
        "",
        "| round | test accuracy (refined) | random | p | BH q | min attainable p | d_z | flips left | DCS | held-out loss (refined / random) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in range(ref["rounds"] + 1):
        key = f"round_{k}"
        a, b = ref["refined"][key], ref["random"][key]
        t = ref["tests"]["test_accuracy"].get(key, {})
        lines.append(
            f"| {k} | {_fmt(a['test_accuracy'])} | {_fmt(b['test_accuracy'])} | {_fmt(t.get('p'))} | {_fmt(t.get('p_bh'))} | {_fmt(t.get('min_attainable_p'))} | "
            f"{_fmt(t.get('cohen_dz'), 3)} | {_fmt(a['flipped_remaining'], 3)} | {_fmt(a['dcs'], 3)} | "
            f"{_fmt(a['heldout_loss'])} / {_fmt(b['heldout_loss'])} |"
        )
    tr = ref.get("dcs_tracking", {})
    lines += ["", f"DCS against flips remaining: Spearman {_fmt(tr.get('spearman_dcs_flipped_remaining'), 2)}; against test "
              f"accuracy: {_fmt(tr.get('spearman_dcs_test_accuracy'), 2)}. Figure: `plots/refine.png`.", ""]
    return lines


def section_corrections(inp: ReportInputs) -> list[str]:
    """The flagged samples (data/label_issues.parquet, top 10) and the reviewer's corrections
    against a random control of the same size (metrics/corrections.json)."""
    sus, corr = inp.extra.get("suspects"), inp.extra.get("corrections")
    if not sus and not corr:
        return []
    lines = ["## Corrections", ""]
    if sus:
        found = sus.get("found") or {}
        lines += [
            f"Flagged samples to review: `data/label_issues.csv` (every training sample, most suspect first by `{sus['ranking']}`; "
            f"the top {sus['top_k']} marked `is_suspect`, grid `plots/suspects.png`)"
            + (f"; {found['found']} of the {found['n_flipped']} injected flips are in its top {found['k']} rows." if found else "."),
            "",
            "| rank | sample | given | suggested (p) | score | flipped |",
            "|---|---|---|---|---|---|",
        ]
        for r in sus["top"]:
            flipped = "n/a" if r.get("flipped") is None else ("yes" if r["flipped"] else "no")
            lines.append(f"| {r['rank']} | {r['sample_id']} | {r['given_label']} | {r['suggested_label']} ({_fmt(r['suggested_prob'], 2)}) | "
                         f"{_fmt(r['score'], 3)} | {flipped} |")
        lines.append("")
    if corr and corr.get("n_corrections"):
        t, b = corr["corrected_vs_random"], corr["corrected_vs_before"]
        m = corr["mean"]
        lines += [
            f"Corrections from `data/corrections.csv`: {corr['n_relabel']} relabelled, {corr['n_remove']} removed "
            f"({corr['flipped_in_corrected']} of them injected flips; a random control of the same size holds "
            f"{_fmt(corr['flipped_in_random_mean'], 2)} on average). Retrained with {len(corr['seeds'])} seeds, paired, "
            f"exact sign-flip signed-rank test ({corr['metric']}):",
            "",
            "| comparison | mean (corrected) | mean (other) | mean diff | p (exact) | min attainable p | d_z |",
            "|---|---|---|---|---|---|---|",
            f"| corrected vs random control | {_fmt(m['corrected'])} | {_fmt(m['random'])} | {_fmt(t['mean_diff'])} | {_fmt(t['p'])} | "
            f"{_fmt(t['min_attainable_p'])} | {_fmt(t['cohen_dz'], 3)} |",
            f"| corrected vs before | {_fmt(m['corrected'])} | {_fmt(m['before'])} | {_fmt(b['mean_diff'])} | {_fmt(b['p'])} | "
            f"{_fmt(b['min_attainable_p'])} | {_fmt(b['cohen_dz'], 3)} |",
            "",
            "Class composition of the corrected samples (given labels): "
            + ", ".join(f"{c}: {n}" for c, n in corr["corrected_class_composition"].items() if n) + ".",
            "",
        ]
    elif corr:
        lines += ["No corrections yet: `data/corrections.csv` has no relabel or remove rows (export the top rows with "
                  "`sampleval suspects --top 50 --export data/corrections.csv`, review them, then `dvc repro`).", ""]
    return lines


SECTIONS = [
    section_header,
    section_corrections,  # the suspects table's top rows and the corrections' before/after: what a reader acts on first
    section_baseline,
    section_influence,
    section_fidelity,
    section_subsets,
    section_composition,
    section_answer,
    section_detection,
    section_refine,
    section_score_shapes,
]


def render_report(inputs: ReportInputs, sections=None) -> str:
    lines: list[str] = []
    for section in sections or SECTIONS:
        body = section(inputs)
        lines += body + (figure_lines(inputs, section.__name__) if body else [])
    return "\n".join(lines)


_IMG = re.compile(r'<img src="([^"]+\.png)"')


def render_html(markdown_text: str, root: str | Path = ".") -> str:
    """One self-contained HTML page from the report's Markdown: the same sections, each
    figure embedded as a data URI (read from ``root``), no server or network needed."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown_text)

    def embed(m: re.Match) -> str:
        path = Path(root) / html.unescape(m.group(1))
        if not path.is_file():
            return m.group(0)
        return f'<img src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"'

    body = _IMG.sub(embed, body)
    style = ("body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;line-height:1.45}"
             "table{border-collapse:collapse;font-size:.85rem;margin:1rem 0}td,th{border:1px solid #ccc;padding:.2rem .4rem}"
             "th{background:#f3f3f3}img{max-width:100%;display:block;margin:.5rem 0}code{background:#f3f3f3;padding:0 .2rem}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sample valuation report</title>"
            f"<style>{style}</style></head><body>\n{body}</body></html>\n")
