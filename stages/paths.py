"""Every file and folder the stages read or write, spelled once (dvc.yaml declares the same).

Stages import the names they use; a path changes here and in dvc.yaml, nowhere else.
"""
from __future__ import annotations

PARAMS_OK = "data/params_ok.json"
PREPARED = "data/prepared"
MANIFEST = "data/prepared/manifest.json"
CHECKPOINTS = "models/checkpoints"
MODEL = "models/model.pt"
METHODS_DIR = "data/influence/methods"  # one <method>.parquet (scores) and <method>.json (diagnostics) per estimator
SCORES = "data/influence/scores.parquet"
EXPLANATIONS = "data/influence/explanations.parquet"

TRAIN_METRICS = "metrics/train.json"
INFLUENCE_METRICS = "metrics/influence.json"
FIDELITY_METRICS = "metrics/fidelity.json"
STATS_METRICS = "metrics/stats.json"
REFINE_METRICS = "metrics/refine.json"
SUBSETS = "metrics/subsets"  # one JSON per subset cell (sampleval.experiments.subset_cells.CellKey.path)
SCORE_SHAPES_METRICS = "metrics/score_shapes.json"
SHAPES_METRICS = "metrics/shapes.json"  # the S-shapedness index (shapes-index)
DETECT_CELLS = "data/detect"  # <cell>.parquet per sweep cell
DETECT_RECORDS = "metrics/detection/cells"  # <cell>.json per sweep cell
DETECTION = "metrics/detection"  # summary.json, summary.md, summary.csv
DETECTION_PLOTS = "plots/detection"
EXPERT_METRICS = "metrics/expert_labels.json"
LABEL_ISSUES = "data/label_issues.parquet"  # the suspects table (sampleval.reporting.suspects), and as CSV:
LABEL_ISSUES_CSV = "data/label_issues.csv"
CORRECTIONS = "data/corrections.csv"  # a reviewer's corrections, applied by prepare (sampleval.data.corrections)
CORRECTIONS_METRICS = "metrics/corrections.json"
SUSPECTS_PLOT = "plots/suspects.png"
JOBS = "data/jobs"  # the executor's job cache (gitignored, not a DVC output): sampleval.runtime.compute.JobCache

TRAIN_CURVE = "plots/train_curve.csv"
EXPLANATIONS_PLOT = "plots/explanations.png"
FIDELITY_CSV = "plots/fidelity.csv"
FIDELITY_LDS_CSV = "plots/fidelity_lds.csv"  # figures: LDS and LOO Spearman per estimator with CIs
FIDELITY_PLOT = "plots/fidelity.png"  # figures (drawn from fidelity's outputs, so a plotting edit retrains nothing)
DETECTION_CURVES = "plots/detection_curves.csv"  # figures: panel (setting), group (ranking), inspected, found
REFINE_CSV = "plots/refine.csv"
REFINE_ROUNDS = "plots/refine_rounds.csv"  # figures: group (arm), round, mean over seeds
SUBSETS_CELLS_CSV = "plots/subsets_cells.csv"  # figures: mean test metric per subset cell
REPORT = "report.md"
REPORT_HTML = "report.html"  # the same report, self-contained (figures embedded)
HEADLINE = "metrics/headline.json"  # about ten numbers (sampleval.reporting.headline.headline)


def plot(name: str) -> str:
    """``plots/<name>``: the report's and the stages' figures and their CSV data."""
    return f"plots/{name}"


def method_scores(method: str) -> str:
    return f"{METHODS_DIR}/{method}.parquet"


def method_diagnostics(method: str) -> str:
    return f"{METHODS_DIR}/{method}.json"


def detect_cell_table(cell: str) -> str:
    return f"{DETECT_CELLS}/{cell}.parquet"


def detect_cell_record(cell: str) -> str:
    return f"{DETECT_RECORDS}/{cell}.json"


def job_cache(stage: str) -> str:
    """``data/jobs/<stage>``: finished jobs of one stage, by key (``compute.job_cache``)."""
    return f"{JOBS}/{stage}"
