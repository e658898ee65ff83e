"""scores: merge the estimators named in influence.methods into data/influence/scores.parquet
and write metrics/influence.json (agreement with Captum, flipped-label detection, shape, and
each estimator's diagnostics)."""
from __future__ import annotations

from sampleval.data.prepared import load_prepared
from sampleval.io import write_json, write_parquet
from sampleval.influence.scores import influence_summary, merge_diagnostics, merge_scores
from stages import paths
from stages._common import log, main, start


@main
def run(argv=None) -> None:
    params = start("scores", torch=False)
    methods = params.influence.methods
    table = merge_scores(load_prepared(paths.PREPARED), methods, paths.METHODS_DIR)
    write_parquet(paths.SCORES, table)
    summary = influence_summary(table, methods)
    summary["diagnostics"] = merge_diagnostics(methods, paths.METHODS_DIR)
    write_json(paths.INFLUENCE_METRICS, summary)
    log.info("scores for %d training samples: %s", len(table), ", ".join(methods))


if __name__ == "__main__":
    run()
