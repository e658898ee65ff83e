"""The cost of issue 22's additions on the default settings, and a preview of the class-matched controls.

    python benchmarks/measure_controls.py refine    # one refine seed's two arms (seed 6), serial: wall and CPU
    python benchmarks/measure_controls.py subsets   # the 6 class-matched cells x subsets.seeds at 2 workers, and
                                                    # their exact tests against the strategy cells of a finished run

Reads data/prepared and data/influence/methods/<ranking>.parquet of a finished default run (copy them from
one), and for `subsets` that run's metrics/subsets (the strategy cells; accuracy on 360 test images is
recovered exactly as a count from its 4 decimals). Results: benchmarks/RESULTS-controls.md.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def refine() -> dict:
    from sampleval.experiments import refine as rf
    from sampleval.data.prepared import load_prepared
    from sampleval.influence.settings import InfluenceSettings
    from sampleval.training.loop import TrainConfig
    from stages._common import start

    params = start("refine")
    r = params.refine
    setup = rf.RefineSetup(prepared=load_prepared("data/prepared"), cfg=TrainConfig.from_params(params), ranking=r.ranking,
                           dcs_score=r.dcs_score, rounds=r.rounds, fraction=r.fraction,
                           influence=InfluenceSettings.from_params(params.influence, params.seed),
                           heldout_fraction=r.heldout_fraction, split_seed=params.seed)
    out = {}
    for arm in rf.ARMS:
        t0, c0 = time.perf_counter(), _cpu()
        rf.arm_job(setup, {"seed": 6, "arm": arm})
        out[arm] = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(_cpu() - c0, 1)}
    return out


def subsets(run_metrics: str) -> dict:
    from sampleval.experiments.subset_cells import matched_plan, plan
    from sampleval.runtime.compute import Compute
    from sampleval.data.prepared import load_prepared
    from sampleval.experiments.stats import compare
    from sampleval.experiments.subset_runs import run_subset_cells
    from sampleval.training.loop import TrainConfig
    from stages._common import start

    params = start("subsets")
    sub = params.subsets
    scores = {r: pd.read_parquet(f"data/influence/methods/{r}.parquet", columns=["sample_id", r]) for r in sub.scores}
    keys = [m for _, m in matched_plan(sub)]
    params = replace(params, compute=replace(params.compute, workers=2))
    t0 = time.perf_counter()
    recs = run_subset_cells(load_prepared("data/prepared"), TrainConfig.from_params(params), keys, sub.seeds, scores, Compute.from_params(params))
    wall = time.perf_counter() - t0
    root = Path(run_metrics)

    def counts(rec):
        return {int(s): int(round(v["accuracy"] * 360)) for s, v in rec["seeds"].items()}

    def flipped(rec):
        return float(np.mean([v["flipped_in_chosen"] for v in rec["seeds"].values()]))

    comps = []
    for cell, control in plan(sub):
        s_rec, c_rec = json.loads(cell.path(root).read_text()), json.loads(control.path(root).read_text())
        comps.append({"name": cell.name, "strategy": counts(s_rec), "control": counts(c_rec), "n_test": 360, "signature": None,
                      "flipped": flipped(s_rec), "control_flipped": flipped(c_rec)})
    for cell, m in matched_plan(sub):
        s_rec = json.loads(cell.path(root).read_text())
        comps.append({"name": f"{cell.name} vs class-matched", "strategy": counts(s_rec), "n_test": 360, "signature": None,
                      "control": {int(s): v["n_correct"] for s, v in recs[m]["seeds"].items()},
                      "flipped": flipped(s_rec), "control_flipped": flipped(recs[m])})
    rows = compare(comps, 0.05, 1000)
    keep = ("mean_diff", "p", "p_bh", "min_attainable_p", "n_tied", "differences", "flipped", "control_flipped")
    return {"retrainings": len(keys) * len(sub.seeds), "wall_s_2_workers": round(wall, 1),
            "rows": {r["name"]: {k: r[k] for k in keep} for r in rows}}


def main() -> None:
    what = sys.argv[1]
    print(json.dumps(refine() if what == "refine" else subsets(sys.argv[2] if len(sys.argv) > 2 else "/work/main/metrics/subsets"), indent=1))


if __name__ == "__main__":
    main()
