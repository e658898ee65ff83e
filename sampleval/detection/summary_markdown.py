"""The detection sweep's summary (:func:`sampleval.detection.summary.summarise`) as
markdown: the tables per metric, the recommendation, per-kind advice, cleanlab's
``find_label_issues``, the paper's threshold and the stability across seeds."""
from __future__ import annotations


def _pm(entry: dict, metric: str) -> str:
    return f"{entry[metric + '_mean']:.3f} ± {entry[metric + '_sd']:.3f}"


def markdown(summary: dict, title: str = "Label-error detection sweep") -> str:
    rk, table, settings = summary["rankings"], summary["table"], list(summary["table"])
    rec = summary["recommended"]
    lines = [f"# {title}", "",
             f"Seeds {summary['seeds']} per setting (development: {summary['development_seeds']}, held out: {summary['held_out_seeds']}); "
             "every ranking oriented so that higher = more suspicious. Mean ± sd over seeds.", ""]

    def grid(metric: str, heading: str) -> None:
        lines.extend([f"## {heading}", "", "| setting | " + " | ".join(rk) + " |", "|---|" + "---|" * len(rk)])
        for s in settings:
            lines.append(f"| {s} | " + " | ".join(_pm(table[s][r], metric) for r in rk) + " |")
        lines.append("")

    grid("auroc", "AUROC (flipped vs clean)")
    grid("average_precision", "Average precision")
    grid("found_top_5pct", "Share of flips found in the top 5 %")
    grid("found_top_10pct", "Share of flips found in the top 10 %")
    lines.extend(recommendation_lines(rec))
    lines.extend(["", "## Which ranking for which kind of noise", "",
                  "| kind | settings | best ranking (lowest per-cell AUROC, cell) | cleanlab (lowest per-cell AUROC, cell) |", "|---|---|---|---|"])
    for kind, a in summary["advice"].items():
        lines.append(f"| {kind} | {', '.join(a['settings'])} | {a['best']} ({a['best_worst_auroc']:.4f}, {a['best_worst_cell']}) | "
                     f"{a['cleanlab_worst_auroc']:.4f}, {a['cleanlab_worst_cell']} |")
    lines.extend(["", "## cleanlab `find_label_issues` (out-of-fold), mean over seeds", "", "| setting | flagged | precision | recall | false-positive rate |", "|---|---|---|---|---|"])
    for s, v in summary["cleanlab_find_label_issues"].items():
        lines.append(f"| {s} | {v['n_flagged']:.1f} | {v['precision']:.3f} | {v['recall']:.3f} | {v['fpr']:.4f} |")
    if "paper_setting" in summary:
        p = summary["paper_setting"]
        lines.extend(["", f"## The labeling-bias paper's threshold (0.5 on the score divided by its maximum), setting {p['setting']}", "",
                      f"Paper: {p['paper']}. Rank-average combinations live on [1/n, 1], so their threshold values are not comparable.", "",
                      "| ranking | share found | false-positive rate |", "|---|---|---|"])
        for r, v in p["rankings"].items():
            lines.append(f"| {r} | {v['found']:.3f} | {v['fpr']:.4f} |")
    if "stability" in summary:
        st = summary["stability"]
        lines.extend(["", f"## Stability across baseline seeds {st['seeds']} ({st['setting']})", "",
                      "| ranking | AUROC mean | AUROC min | AUROC max | top-5 % Jaccard mean | min |", "|---|---|---|---|---|---|"])
        for r, v in st["rankings"].items():
            lines.append(f"| {r} | {v['auroc_mean']:.4f} | {v['auroc_min']:.4f} | {v['auroc_max']:.4f} | {v['top5_jaccard_mean']:.3f} | {v['top5_jaccard_min']:.3f} |")
    return "\n".join(lines) + "\n"


def recommendation_lines(rec: dict) -> list[str]:
    """The recommendation in markdown: the rule, what it chose, and per cell the ranking it
    gives against the cell's best ranking (AUROC, AP) and cleanlab."""
    aim = rec["aim"]
    lines = [f"## Recommended ranking: `{rec['ranking']}` (rule `{rec['rule']}`)", "", f"Chosen by {rec['how']}."]
    by = rec["choice"].get("by_structure")
    if by:
        lines.append("Per noise structure (development cells): " + "; ".join(f"{k}: `{v['ranking']}` ({', '.join(v['cells'])})" for k, v in by.items())
                     + f"; otherwise `{rec['choice']['overall']}`.")
    lines.extend(["", f"Per cell, the ranking the rule gives it; shortfall = the cell's best ranking minus it (aim: AUROC <= {aim['auroc']}, "
                  f"AP <= {aim['average_precision']}); difference = its AUROC minus cleanlab's.", "",
                  "| cell | part | structure | ranking | AUROC | AUROC shortfall (best) | AP | AP shortfall (best) | vs cleanlab |",
                  "|---|---|---|---|---|---|---|---|---|"])
    for cell, v in rec["cells"].items():
        lines.append(f"| {cell} | {'development' if v['development'] else 'held out'} | {v.get('structure', '-')} | {v['ranking']} | {v['auroc']:.4f} | "
                     f"{v['auroc_shortfall']:.4f} ({v['best_auroc_ranking']}) | {v['average_precision']:.4f} | {v['ap_shortfall']:.4f} ({v['best_ap_ranking']}) | {v['diff']:+.4f} |")
    for part in ("development", "held_out"):
        p = rec[part]
        if not p["n_cells"]:
            continue
        lines.append(f"\n{part.replace('_', ' ')}: within the aim in {p['n_within_aim']} of {p['n_cells']} cells"
                     + (f" (not in {', '.join(p['outside_aim'])})" if p["outside_aim"] else "")
                     + f"; largest AUROC shortfall {p['max_auroc_shortfall']['value']:.4f} ({p['max_auroc_shortfall']['cell']}), "
                     f"largest AP shortfall {p['max_ap_shortfall']['value']:.4f} ({p['max_ap_shortfall']['cell']}); "
                     f"at least cleanlab's AUROC in {p['n_at_least_cleanlab']} of {p['n_cells']} cells"
                     + (f" (below in {', '.join(p['below_cleanlab'])})" if p["below_cleanlab"] else ""))
    return lines
