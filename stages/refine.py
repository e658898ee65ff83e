"""refine: k rounds of influence-guided removal against random removal of the same sizes
-> metrics/refine.json, plots/refine.csv, plots/refine.png.

Every seed in refine.seeds runs both arms inside this one stage (see sampleval/experiments/refine.py),
each (seed, arm) an executor job (compute.*)."""
from __future__ import annotations

import time

from sampleval.experiments import refine as rf
from sampleval.influence.settings import InfluenceSettings
from sampleval.runtime.compute import Compute
from sampleval.data.prepared import load_prepared
from sampleval.io import atomic_path, write_json
from sampleval.training.loop import TrainConfig
from stages._common import log, main, start
from stages.paths import PREPARED, REFINE_CSV, REFINE_METRICS, plot


@main
def run(argv=None) -> None:
    params = start("refine")
    r = params.refine
    t0 = time.perf_counter()
    setup = rf.RefineSetup(
        prepared=load_prepared(PREPARED),
        cfg=TrainConfig.from_params(params),
        ranking=r.ranking,
        dcs_score=r.dcs_score,
        rounds=r.rounds,
        fraction=r.fraction,
        influence=InfluenceSettings.from_params(params.influence, params.seed),  # each job's seed replaces this one
        heldout_fraction=r.heldout_fraction,
        split_seed=params.seed,
    )
    table = rf.run(setup, r.seeds, Compute.from_params(params))
    out = {
        "ranking": r.ranking,
        "dcs_score": r.dcs_score,
        "rounds": r.rounds,
        "fraction": r.fraction,
        "n_remove_per_round": setup.n_remove,
        "seeds": list(r.seeds),
        "n_train": int(len(setup.train.ids)),
        "n_val_scoring": int(len(setup.val_score.ids)),
        "n_val_heldout": int(len(setup.val_heldout.ids)),
        "n_flipped": int(setup.train.flipped.sum()),
        **rf.summarize(table, alpha=params.stats.alpha, n_bootstrap=params.stats.n_bootstrap),
        "dcs_tracking": rf.dcs_tracks_quality(table),
    }
    write_json(REFINE_METRICS, out)
    with atomic_path(REFINE_CSV) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    rf.refine_plot(table, out, plot("refine.png"))
    last = f"round_{r.rounds}"
    log.info(
        "refine (%s, %d seeds, %.1f s): test accuracy refined %.4f vs random %.4f at %s (p %.3g); DCS %.3f -> %.3f",
        r.ranking, len(r.seeds), time.perf_counter() - t0, out["refined"][last]["test_accuracy"], out["random"][last]["test_accuracy"],
        last, out["tests"]["test_accuracy"][last]["p"], out["refined"]["round_0"]["dcs"], out["refined"][last]["dcs"],
    )


if __name__ == "__main__":
    run()
