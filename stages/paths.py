"""Every file and folder the stages read or write, spelled once (dvc.yaml declares the same).

Stages import the names they use; a path changes here and in dvc.yaml, nowhere else.
"""
from __future__ import annotations

PREPARED = "data/prepared"
CHECKPOINTS = "models/checkpoints"
MODEL = "models/model.pt"
METHODS_DIR = "data/influence/methods"  # one <method>.parquet (scores) and <method>.json (diagnostics) per estimator
SCORES = "data/influence/scores.parquet"
EXPLANATIONS = "data/influence/explanations.parquet"

TRAIN_METRICS = "metrics/train.json"
INFLUENCE_METRICS = "metrics/influence.json"
FIDELITY_METRICS = "metrics/fidelity.json"
STATS_METRICS = "metrics/stats.json"

TRAIN_CURVE = "plots/train_curve.csv"
EXPLANATIONS_PLOT = "plots/explanations.png"
REPORT = "report.md"


def method_scores(method: str) -> str:
    return f"{METHODS_DIR}/{method}.parquet"


def method_diagnostics(method: str) -> str:
    return f"{METHODS_DIR}/{method}.json"
