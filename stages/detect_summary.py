"""detect-summary: the sweep table over the detect cells that params name, and the
recommended ranking, chosen on the development cells by detect.recommend.rule
(sampleval.detection.summary; summary.json["recommended"]["ranking"]).

Writes metrics/detection/summary.json (+ .md, .csv) and plots/detection/ (detection and
threshold curves per setting, CSV and PNG). A cell named by params but missing is an
error: nothing is globbed.
"""
from __future__ import annotations

from sampleval.detection.summary import long_csv, pipeline_cell, recommended_by_setting, summarise
from sampleval.detection.summary_figures import plot_curves
from sampleval.detection.summary_markdown import markdown
from sampleval.io import write_json, write_text
from stages._common import log, main, start
from stages.paths import DETECT_CELLS, DETECT_RECORDS, DETECTION, DETECTION_PLOTS


@main
def run(argv=None) -> None:
    params = start("detect-summary", torch=False)
    det = params.detect
    target = pipeline_cell(params, det.run, det.seeds)
    summary, insp, thr = summarise(DETECT_CELLS, det.run, det.seeds, det, det.development_seeds, DETECT_RECORDS, target)
    write_json(f"{DETECTION}/summary.json", summary)
    write_text(f"{DETECTION}/summary.md", markdown(summary))
    write_text(f"{DETECTION}/summary.csv", long_csv(summary).to_csv(index=False))
    for s in det.run:
        write_text(f"{DETECTION_PLOTS}/curves-{s}.csv", insp[s].to_csv(index=False))
        write_text(f"{DETECTION_PLOTS}/thresholds-{s}.csv", thr[s].to_csv(index=False))
    plot_curves(insp, thr, recommended_by_setting(summary), f"{DETECTION_PLOTS}/curves.png", f"{DETECTION_PLOTS}/thresholds.png")
    rec = summary["recommended"]
    log.info("recommended %s (rule %s: %s); held out: within the aim in %d/%d cells, >= cleanlab AUROC in %d/%d", rec["ranking"], rec["rule"], rec["how"],
             rec["held_out"]["n_within_aim"], rec["held_out"]["n_cells"], rec["held_out"]["n_at_least_cleanlab"], rec["held_out"]["n_cells"])


if __name__ == "__main__":
    run()
