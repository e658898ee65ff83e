"""suspects: the flagged samples a person reviews -> data/label_issues.parquet, data/label_issues.csv
and plots/suspects.png (sampleval.reporting.suspects; schema in README "Review flagged samples").

The ranking is suspects.ranking, or with `recommended` the detection sweep's recommendation
(metrics/detection/summary.json "recommended"."ranking")."""
from __future__ import annotations

import json
from pathlib import Path

from sampleval.config import Params
from sampleval.data.prepared import load_prepared
from sampleval.reporting.label_issues import found_in_top
from sampleval.reporting.suspects import label_issues_table, model_probabilities, plot_suspects, write_label_issues
from sampleval.reporting.settings import RECOMMENDED
from stages import paths
from stages._common import log, main, start


def recommended_ranking(params: Params, summary_path: str = f"{paths.DETECTION}/summary.json") -> str:
    """suspects.ranking, or the recommendation of the detection summary."""
    if params.suspects.ranking != RECOMMENDED:
        return params.suspects.ranking
    path = Path(summary_path)
    if path.exists():
        rec = json.loads(path.read_text()).get("recommended")
        if isinstance(rec, dict) and rec.get("ranking"):
            return rec["ranking"]
    raise ValueError(f"suspects.ranking is recommended but {summary_path} names no recommended ranking; "
                     "run `dvc repro detect-summary` or set suspects.ranking to a ranking of influence.methods")


@main
def run(argv=None) -> None:
    params = start("suspects", baseline=True)
    import pandas as pd

    prepared = load_prepared(paths.PREPARED)
    scores = pd.read_parquet(paths.SCORES)
    ranking = recommended_ranking(params)
    probs = model_probabilities(prepared, params.model.name, paths.MODEL)
    noise = json.loads(Path(paths.MANIFEST).read_text()).get("noise") or {}
    noise_known = noise.get("kind", "none") != "none" and noise.get("rate", 0) > 0
    k = params.suspects.top_k
    table = label_issues_table(scores, probs, prepared.classes, prepared.task, ranking, params.detect.combinations, k, noise_known)
    write_label_issues(table, paths.LABEL_ISSUES, paths.LABEL_ISSUES_CSV)
    tr = prepared.split("train")
    plot_suspects(table, dict(zip(tr.ids, tr.x)), paths.SUSPECTS_PLOT, k)
    found = found_in_top(table)
    log.info("label issues by %s: top %d flagged%s; table %s, grid %s", ranking, k,
             f"; {found['found']} of {found['n_flipped']} injected flips in the top {found['k']}" if found else "",
             paths.LABEL_ISSUES_CSV, paths.SUSPECTS_PLOT)


if __name__ == "__main__":
    run()
