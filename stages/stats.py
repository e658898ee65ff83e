"""stats: every ranked strategy against its random control at the same fraction and
seeds -> metrics/stats.json. The expected cells come from params; a missing one is an
error (stale files from an older, larger matrix are never globbed in)."""
from __future__ import annotations

import json
from pathlib import Path

from sampleval.io import write_json
from sampleval.stats import compare
from sampleval.subsets import RANKED_STRATEGIES, control_of, fractions_for
from stages._common import CELL_PATH, log, main, start


def expected_pairs(sub: dict) -> list[tuple[str, str, float]]:
    return [
        (strategy, control_of(strategy), f)
        for strategy in RANKED_STRATEGIES
        for f in fractions_for(strategy, sub["remove_fractions"], sub["select_fractions"])
    ]


@main
def run(argv=None) -> None:
    params = start("stats")
    sub, cfg = params["subsets"], params["stats"]
    pairs = expected_pairs(sub)
    results = {}
    for strategy, control, fraction in pairs:
        for name in (strategy, control):
            path = Path(CELL_PATH.format(strategy=name, fraction=fraction))
            if not path.exists():
                raise FileNotFoundError(f"subset cell {path} is missing; run `dvc repro` to create it")
            cell = json.loads(path.read_text())
            seeds = [str(s) for s in sub["seeds"]]
            missing = [s for s in seeds if s not in cell["seeds"]]
            if missing:
                raise KeyError(f"{path} lacks seeds {missing}; run `dvc repro` to refresh it")
            results[(name, fraction)] = {int(s): cell["seeds"][s][cfg["metric"]] for s in seeds}
    rows = compare(results, pairs, cfg["alpha"], cfg["n_bootstrap"])
    out = {
        "metric": f"test.{cfg['metric']}",
        "alpha": cfg["alpha"],
        "n_seeds": len(sub["seeds"]),
        "n_comparisons": len(rows),
        "n_significant_bh": sum(r["significant"] for r in rows),
        "warnings": [f"{r['strategy']}@{r['fraction']}: min attainable p {r['min_attainable_p']:.4g} > alpha" for r in rows if not r["alpha_reachable"]],
        "comparisons": {f"{r['strategy']}@{r['fraction']}": r for r in rows},
    }
    write_json("metrics/stats.json", out)
    for r in rows:
        log.info("%s@%s vs %s: diff %+.4f, p %.4g, BH q %.4g, d_z %s", r["strategy"], r["fraction"], r["control"], r["mean_diff"], r["p"], r["p_bh"], r["cohen_dz"])


if __name__ == "__main__":
    run()
