"""The headline: about ten numbers that say what a run found (``metrics/headline.json``, for
`dvc exp show` / `dvc metrics diff`), and the report's first line, which says them in words."""
from __future__ import annotations

from typing import TYPE_CHECKING

from sampleval.reporting.report_inputs import ReportInputs, _fmt, _pct

if TYPE_CHECKING:
    from sampleval.data.settings import NoiseParams


def matching_cell(records: list[dict], noise: NoiseParams, seed: int) -> dict | None:
    """The detection-sweep cell that is the main run itself: the same noise (kind, rate,
    pairs, training split only) drawn with the same seed, and the baseline trained with the
    same seed (:mod:`sampleval.detection.cell`: cell s = 0 of the default setting is the
    default pipeline). ``None`` when the sweep has no such cell (own data, another noise)."""
    for rec in records:
        n = rec.get("noise", {})
        if (rec.get("seed") == seed and n.get("kind") == noise.kind and n.get("rate") == noise.rate
                and [list(p) for p in n.get("pairs") or []] == [list(p) for p in noise.pairs or []]
                and list(noise.splits) == ["train"] and n.get("noise_seed") in (None, seed)):
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
    p = inp.params
    cell = matching_cell(inp.extra.get("detection_cells") or [], p.noise, p.seed) if p is not None else None
    setting = cell["setting"] if cell else (p.detect.stability_setting if p is not None else None)
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
