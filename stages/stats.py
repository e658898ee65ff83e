"""stats: every ranked cell against its random control (same variant, fraction and seeds), and
every global one also against its class-matched control -> metrics/stats.json (``comparisons``:
against the random control, by cell name; ``class_matched``: against the class-matched
control, by cell name; one Benjamini-Hochberg family over both). The expected cells come from params; a missing one is an error
(stale files from an older, larger matrix are never globbed in)."""
from __future__ import annotations

from sampleval.experiments.subset_cells import CLASS_MATCHED, comparisons, load_cells
from sampleval.io import write_json
from sampleval.experiments.stats import compare
from stages._common import log, main, start
from stages.paths import STATS_METRICS, SUBSETS


@main
def run(argv=None) -> None:
    params = start("stats", torch=False)
    sub, cfg = params.subsets, params.stats
    cells = load_cells(sub, SUBSETS)
    rows = compare(comparisons(sub, cells, cfg.metric), cfg.alpha, cfg.n_bootstrap)
    distinct = [r for r in rows if r["same_as"] is None]
    out = {
        "metric": f"test.{cfg.metric}",
        "tested_on": "correct counts" if all(r["n_test"] is not None for r in rows) else "unrounded values",
        "alpha": cfg.alpha,
        "n_seeds": len(sub.seeds),
        "n_rows": len(rows),
        "n_comparisons": len(distinct),
        "n_significant_bh": sum(r["significant"] for r in distinct),
        "warnings": [f"{r['name']}: min attainable p {r['min_attainable_p']:.4g} > alpha" for r in distinct if not r["alpha_reachable"]],
        "comparisons": {r["name"]: r for r in rows if r["control_kind"] != CLASS_MATCHED},
        "class_matched": {r["name"].removesuffix(f" vs {CLASS_MATCHED}"): r for r in rows if r["control_kind"] == CLASS_MATCHED},
    }
    write_json(STATS_METRICS, out)
    for r in rows:
        log.info("%s vs %s: diff %+.4f, p %.4g, BH q %.4g, d_z %s%s", r["name"], r["control_name"], r["mean_diff"], r["p"], r["p_bh"], r["cohen_dz"],
                 f" (same subsets as {r['same_as']})" if r["same_as"] else "")


if __name__ == "__main__":
    run()
