"""Report sections on retraining on subsets: each strategy against its random and class-matched
controls (metrics/stats.json), the class composition of the chosen sets, and the answer."""
from __future__ import annotations

from sampleval.experiments.subset_cells import STRIP_RATIO, CellKey, composition, stripped_classes
from sampleval.reporting.report_inputs import ReportInputs, _fmt, _pct


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
        m = matched.get(r["name"])
        beats_matched = bool(m and m["significant"] and m["mean_diff"] > 0)
        if stripped and r["significant"] and not r["same_as"]:
            (explained if beats_matched else confounded).append(r["name"])
        lines.append(_answer_row(inp, r, m, stripped, alpha))
    lines += _answer_tally(rows, matched, confounded, explained)
    for r in _better(rows):
        m = matched.get(r)
        if m is not None:
            lines += ["", f"`{r}` against its class-matched control: {_fmt(m['mean_diff'])} (p {_fmt(m['p'])}, BH q {_fmt(m['p_bh'])}, "
                      f"min attainable p {_fmt(m['min_attainable_p'])}): {_matched_verdict(stats['comparisons'][r], m, inp)}."]
    return lines + _detection_found(inp) + [""]


def _answer_row(inp: ReportInputs, r: dict, m: dict | None, stripped: list[dict] | None, alpha: float) -> str:
    """One comparison's row of the answer table: verdict, numbers, flips in the set, classes stripped, class-matched control."""
    direction = r["strategy_name"].split("-")[0]
    comp = "n/a" if stripped is None else ("class-deletion confound: " + _stripped_text(stripped, direction)) if stripped else "no class stripped"
    flipped = _flipped_in_chosen(inp, r)
    vs = "n/a" if m is None else f"{_fmt(m['mean_diff'])}, p {_fmt(m['p'])}, q {_fmt(m['p_bh'])}, min p {_fmt(m['min_attainable_p'])}"
    return (
        f"| {r['ranking']} | {r['variant']} | {r['strategy_name']} | {r['fraction']} | {_verdict(r, alpha)} | "
        f"{_fmt(r['strategy_mean'])} | {_fmt(r['control_mean'])} | {_fmt(r['p'])} | {_fmt(r['p_bh'])} | {_fmt(r['min_attainable_p'])} | "
        f"{_fmt(r['cohen_dz'], 3)} | {_fmt(r['median_diff'])} [{_fmt(r['median_diff_ci_low'])}, {_fmt(r['median_diff_ci_high'])}] | "
        f"{flipped} | {comp} | {vs} | {_matched_verdict(r, m, inp)} |"
    )


def _better(rows: list[dict]) -> list[str]:
    """The distinct comparisons significantly better than their random control."""
    return [r["name"] for r in rows if not r["same_as"] and r["significant"] and r["mean_diff"] > 0]


def _answer_tally(rows: list[dict], matched: dict, confounded: list[str], explained: list[str]) -> list[str]:
    """How many distinct comparisons beat (or lose to) random, and which significant ones strip a class."""
    distinct = [r for r in rows if not r["same_as"]]
    better = _better(rows)
    worse = [r["name"] for r in distinct if r["significant"] and r["mean_diff"] < 0]
    return [
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


def _detection_found(inp: ReportInputs) -> list[str]:
    """Per subset ranking: how many flipped labels it puts among its most suspicious samples (metrics/influence.json)."""
    lines: list[str] = []
    n_flipped = inp.influence.get("n_flipped", 0)
    for ranking in inp.params.subsets.scores:
        detect = inp.influence.get(ranking, {}).get("detect")
        if detect and n_flipped:
            found = int(round(detect["found_in_top_n_flipped"] * n_flipped))
            lines += [
                "",
                f"The `{ranking}` ranking finds {found} of the {n_flipped} flipped labels among its {n_flipped} most suspicious "
                f"training samples, and {detect['found_inspecting_5pct']:.0%} of them within its most suspicious 5 % "
                f"(detection AUROC {detect['auroc']:.4f}).",
            ]
    return lines


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
