"""How many points, subsets and seeds the fidelity stage needs: one evaluation of every
estimator in params.yaml on the prepared default data (run `dvc repro scores` first), with
a given number of leave-one-out points and LDS subsets, 3 leave-one-out seeds and 2 seeds
per subset, so that the training noise of both targets can be measured.

    OMP_NUM_THREADS=1 python benchmarks/fidelity_counts.py 20 64 /tmp/fidelity_counts.json
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import time, json
import numpy as np, torch, pandas as pd
torch.set_num_threads(1)
from sampleval.config import load
from sampleval.data.prepared import load_prepared
from sampleval.training.loop import TrainConfig
from sampleval.experiments import fidelity as fid
from sampleval.experiments.settings import FidelityParams
params = load("params.yaml")
p = load_prepared("data/prepared"); tr, va = p.split("train"), p.split("val")
cfg = TrainConfig.from_params(params); cfg.device = "cpu"
selected = json.load(open("metrics/train.json"))["best_epoch"]
setup = fid.Retraining(tr.x, tr.y, va.x, va.y, p.task, p.n_classes, cfg, epoch=selected)
scores = pd.read_parquet("data/influence/scores.parquet")
fc = FidelityParams(n_points=int(sys.argv[1]), seeds=[0, 1, 2], n_subsets=int(sys.argv[2]), subset_seeds=[0, 1], subset_fraction=0.5,
                    epoch="selected", n_bootstrap=2000, tracin_checkpoints=["all", "up_to_selected", "burn_in_1", "burn_in_2"])
t = time.perf_counter()
out, table = fid.evaluate(setup, scores, params.influence.methods, fc, params.seed, selected_epoch=selected, sample_ids=tr.ids, convex_damping=params.influence.damping)
out["wall_s"] = time.perf_counter() - t
json.dump(out, open(sys.argv[3], "w"), indent=1, default=float)
from sampleval.reporting.fidelity_table import render_table; print(render_table(out)); print(out["noise"], out["wall_s"])
