"""scores: merge the estimators named in influence.methods into data/influence/scores.parquet
and write metrics/influence.json (agreement with Captum, flipped-label detection, shape)."""
from __future__ import annotations

from sampleval.data.prepared import load_prepared
from sampleval.io import write_json, write_parquet
from sampleval.scores import influence_summary, merge_scores
from stages._common import log, main, start


@main
def run(argv=None) -> None:
    params = start("scores")
    prepared = load_prepared("data/prepared")
    table = merge_scores(prepared, params["influence"]["methods"], "data/influence/methods")
    write_parquet("data/influence/scores.parquet", table)
    summary = influence_summary(table, params["influence"]["methods"])
    write_json("metrics/influence.json", summary)
    log.info("scores for %d training samples: %s", len(table), ", ".join(params["influence"]["methods"]))


if __name__ == "__main__":
    run()
