"""Report sections on wrong labels: the detection sweep across noise kinds and seeds, the score
shapes, refinement against random removal, and the flagged samples with the reviewer's corrections."""
from __future__ import annotations

from sampleval.reporting.report_inputs import FIGURES, ReportInputs, _fmt


def section_score_shapes(inp: ReportInputs) -> list[str]:
    """The score-shapes stage's figures (README "Score shapes"); its numbers stay in metrics/score_shapes.json."""
    if not any(f in inp.figures for f in FIGURES["section_score_shapes"]):
        return []
    return ["## Score shapes over the detection sweep", "",
            "Sorted scores of the sweep's cells and where the flips sit; numbers: `metrics/score_shapes.json`.", ""]


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
