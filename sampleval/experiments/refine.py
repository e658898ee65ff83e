"""Iterative dataset refinement (the data-gradient paper, seed 004), against random removal.

One refinement run, for one seed ``s``:

- round 0: train on the whole training split (seed ``s``), score every training sample
  with the ranking estimator;
- round r = 1..k: remove the ``n_remove = round(fraction * n_train)`` most harmful of the
  remaining samples (by the scores of round r-1), retrain from scratch with seed ``s``,
  score again.

Its random control removes the same number of samples per round, chosen uniformly at
random among the remaining ones with ``numpy.random.default_rng(s)``, and trains with the
same seed ``s``. Round 0 is the same training for both arms.

The validation split is cut once (seeded, class-stratified for multi-class data) into a
**scoring part**, which selects the best epoch and provides the validation gradients of
every scoring, and a **held-out part** that nothing in the loop ever looks at: its loss
and accuracy per round are the overfitting check (removing the samples that "hurt" the
scoring part can fit that part at the expense of unseen data; the held-out part shows it).
The test split is used for the reported metrics only.

**Dataset Contribution Score (DCS).** For the signed influence scores ``s_i`` of the
training samples of a round (positive = helpful, the project's sign convention), scored
with that round's model against the scoring part of validation::

    DCS = sum_i s_i / sum_i |s_i|  =  (P - N) / (P + N)

with ``P`` the total positive (helpful) influence mass and ``N`` the total negative
(harmful) mass. It is the mean influence of the training set normalised by its mean
absolute influence: +1 when every sample helps, -1 when every sample hurts, 0 when
helpful and harmful mass cancel; equivalently ``2 * P / (P + N) - 1``, a linear map of
the share of influence mass that is helpful. The normalisation makes it independent of
the scale of the scores, which changes with every retraining (learning rates, loss
level, number of checkpoints), so rounds and arms can be compared: a cleaner training set
has less harmful mass and a higher DCS. It is undefined (NaN) when every score is 0.
"""
from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sampleval.data.prepared import Prepared, Split
from sampleval.influence.registry import signed_influences, suspicion
from sampleval.training.evaluation import evaluate
from sampleval.training.retrain import subset_split
from sampleval.io import save_png, torch_save
from sampleval.experiments.stats import correct_count
from sampleval.training.loop import TrainConfig, predict_logits, target_tensor, train
from sampleval.influence.settings import InfluenceSettings

log = logging.getLogger(__name__)

# Baselines that rank samples but are no influence on the validation loss: no DCS from them
# (``loss`` is minus the training loss, always negative; ``cleanlab`` a label quality - 0.5).

ARMS = ("refined", "random")


def dataset_contribution_score(scores: np.ndarray) -> float:
    """DCS = sum(s) / sum(|s|) in [-1, 1] for signed influence scores (positive = helpful);
    NaN when every score is 0 or the array is empty. See the module docstring."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"DCS needs a 1-D array of per-sample scores, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("DCS: the influence scores contain NaN or inf; check the estimator's output")
    mass = np.abs(s).sum()
    return float(s.sum() / mass) if mass > 0 else float("nan")


def harmfulness(name: str, values: np.ndarray) -> np.ndarray:
    """Per-sample harm (higher = remove first) from an estimator's main column."""
    values = np.asarray(values, dtype=np.float64)
    return suspicion(name, values)


def split_validation(val: Split, heldout_fraction: float, seed: int, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks ``(scoring, heldout)`` over the validation split: ``round(heldout_fraction * n)``
    samples held out (per class when ``stratify``, at least one sample kept on each side of every
    class with two or more members), drawn with ``seed``."""
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"refine.heldout_fraction must be strictly between 0 and 1, got {heldout_fraction}")
    n = len(val.ids)
    if n < 2:
        raise ValueError(f"the validation split has {n} sample(s); refine needs at least 2 to hold some out")
    rng = np.random.default_rng(seed)
    heldout = np.zeros(n, dtype=bool)
    groups = [np.flatnonzero(val.y == c) for c in np.unique(val.y)] if stratify else [np.arange(n)]
    for idx in groups:
        k = int(round(heldout_fraction * len(idx)))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        heldout[rng.choice(idx, size=k, replace=False)] = True
    if heldout.all() or not heldout.any():
        raise ValueError(f"refine.heldout_fraction = {heldout_fraction} leaves one part of the {n} validation samples empty")
    return ~heldout, heldout


def _view(prepared: Prepared, train_ids: np.ndarray, val_ids: np.ndarray) -> Prepared:
    """The prepared data restricted to the given training and validation ids (the estimator
    entry points read ``prepared.split('train')`` and ``prepared.split('val')``)."""
    t = prepared.table
    keep = (t["split"].eq("train") & t["sample_id"].isin(set(train_ids))) | (t["split"].eq("val") & t["sample_id"].isin(set(val_ids)))
    return Prepared(images=prepared.images, table=t[keep], task=prepared.task, classes=prepared.classes)


def score_training_set(view: Prepared, cfg: TrainConfig, ckpt_dir: Path, model_path: Path, names: list[str], influence: dict, seed: int) -> dict[str, np.ndarray]:
    """The one place refine calls the influence package: each estimator's main column for the
    training samples of ``view``, scored against its validation samples."""
    from sampleval.influence.context import Baseline
    from sampleval.influence.runner import run_estimator
    from sampleval.influence.core import make_context
    from sampleval.training.loop import pick_device

    ctx = make_context(Baseline.load(view, cfg, ckpt_dir, model_path), InfluenceSettings.from_params(influence, seed), device=pick_device(cfg.device))
    return {name: run_estimator(name, ctx)[name] for name in dict.fromkeys(names)}


@dataclass
class RefineSetup:
    prepared: Prepared
    cfg: TrainConfig
    ranking: str
    dcs_score: str
    rounds: int
    fraction: float
    influence: InfluenceSettings  # what every estimator reads; each job swaps in its seed
    heldout_fraction: float = 0.5
    split_seed: int = 0
    scorer: object = field(default=score_training_set)  # tests may pass a fake with the same signature

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"refine.rounds must be >= 1, got {self.rounds}")
        if not 0 < self.fraction < 1:
            raise ValueError(f"refine.fraction must be strictly between 0 and 1, got {self.fraction}")
        if self.dcs_score not in signed_influences():
            raise ValueError(f"refine.dcs_score = {self.dcs_score!r} is not a signed influence; DCS needs one (e.g. tracin, if_diag)")
        self.train = self.prepared.split("train")
        self.test = self.prepared.split("test")
        val = self.prepared.split("val")
        score_mask, held_mask = split_validation(val, self.heldout_fraction, self.split_seed, self.prepared.task == "multiclass")
        self.val_score = subset_split(val, score_mask)
        self.val_heldout = subset_split(val, held_mask)
        self.n_remove = int(round(self.fraction * len(self.train.ids)))
        if self.n_remove < 1:
            raise ValueError(f"refine.fraction = {self.fraction} removes no sample of {len(self.train.ids)}; raise it")
        if self.n_remove * self.rounds >= len(self.train.ids):
            raise ValueError(f"refine: {self.rounds} rounds of {self.n_remove} removals would empty the training set; lower refine.rounds or refine.fraction")


def _round(setup: RefineSetup, keep: np.ndarray, seed: int, need_scores: bool) -> tuple[dict, dict[str, np.ndarray] | None]:
    """Train on ``keep`` with ``seed``, measure, and (optionally) score the kept samples."""
    tr = subset_split(setup.train, keep)
    with tempfile.TemporaryDirectory(prefix="refine-") as tmp:
        ckpt_dir = Path(tmp) / "checkpoints"
        res = train(tr.x, tr.y, setup.val_score.x, setup.val_score.y, setup.prepared.task, setup.prepared.n_classes, setup.cfg, seed, ckpt_dir=ckpt_dir)
        held = evaluate(res.model, setup.val_score, setup.val_heldout, setup.prepared.task, setup.prepared.classes)
        test = evaluate(res.model, setup.val_score, setup.test, setup.prepared.task, setup.prepared.classes)["test"]
        multiclass = setup.prepared.task == "multiclass"
        row = {
            "n_train": int(keep.sum()),
            "flipped_remaining": int(tr.flipped.sum()),
            "test_accuracy": test["accuracy"],
            # the counts behind the accuracies (multi-class; multi-label accuracy is a mean over labels): the tests run on them
            "test_correct": correct_count(test["accuracy"], len(setup.test.ids)) if multiclass else None,
            "n_test": int(len(setup.test.ids)),
            "heldout_correct": correct_count(held["test"]["accuracy"], len(setup.val_heldout.ids)) if multiclass else None,
            "n_heldout": int(len(setup.val_heldout.ids)),
            "test_macro_f1": test["macro_f1"],
            "score_val_loss": _mean_loss(res, setup.val_score, setup.prepared.task),
            "score_val_accuracy": held["val"]["accuracy"],
            "heldout_loss": _mean_loss(res, setup.val_heldout, setup.prepared.task),
            "heldout_accuracy": held["test"]["accuracy"],
            "best_epoch": int(res.best_epoch),
        }
        # overfitting to the scoring part shows as a growing gap (held-out loss above scoring-part loss)
        row["heldout_gap"] = row["heldout_loss"] - row["score_val_loss"]
        scores = None
        if need_scores:
            model_path = Path(tmp) / "model.pt"
            torch_save(model_path, {"model": res.best_state})
            view = _view(setup.prepared, tr.ids, setup.val_score.ids)
            scores = setup.scorer(view, setup.cfg, ckpt_dir, model_path, [setup.ranking, setup.dcs_score], setup.influence, seed)
            for name, values in scores.items():
                if len(values) != len(tr.ids):
                    raise RuntimeError(f"estimator {name} scored {len(values)} samples, expected {len(tr.ids)}")
            row["dcs"] = dataset_contribution_score(scores[setup.dcs_score])
    return row, scores


def _mean_loss(res, split: Split, task: str) -> float:
    logits = torch.from_numpy(predict_logits(res.model, split.x)).double()
    return float(res.loss_fn(logits, target_tensor(split.y, task), reduction="mean"))


def _refined_arm(setup: RefineSetup, seed: int) -> list[dict]:
    """Round 0 (the one training both arms share: its row for each arm) and the refined arm's
    rounds: remove the most harmful remaining samples, by the previous round's scores."""
    n = len(setup.train.ids)
    rows = []
    row0, scores = _round(setup, np.ones(n, dtype=bool), seed, need_scores=True)
    flips0 = row0["flipped_remaining"]
    for arm in ARMS:
        rows.append({"seed": seed, "arm": arm, "round": 0, "n_removed": 0, "flipped_removed": 0, **row0})
    keep = np.ones(n, dtype=bool)
    for r in range(1, setup.rounds + 1):
        kept_idx = np.flatnonzero(keep)
        harm = harmfulness(setup.ranking, scores[setup.ranking])
        order = np.lexsort((kept_idx, -harm))  # most harmful first; ties by position (deterministic)
        keep[kept_idx[order[: setup.n_remove]]] = False
        row, scores = _round(setup, keep, seed, need_scores=True)
        rows.append({"seed": seed, "arm": "refined", "round": r, "n_removed": int(n - keep.sum()), "flipped_removed": flips0 - row["flipped_remaining"], **row})
    return rows


def _random_arm(setup: RefineSetup, seed: int) -> list[dict]:
    """The random control's rounds 1..k: the same number per round, at random among the
    remaining (``numpy.random.default_rng(seed)``), trained with the same seed."""
    n = len(setup.train.ids)
    flips0 = int(setup.train.flipped.sum())  # round 0 trains on every sample
    rng = np.random.default_rng(seed)
    keep = np.ones(n, dtype=bool)
    rows = []
    for r in range(1, setup.rounds + 1):
        keep[rng.choice(np.flatnonzero(keep), size=setup.n_remove, replace=False)] = False
        row, _ = _round(setup, keep, seed, need_scores=True)
        rows.append({"seed": seed, "arm": "random", "round": r, "n_removed": int(n - keep.sum()), "flipped_removed": flips0 - row["flipped_remaining"], **row})
    return rows


def arm_job(setup: RefineSetup, job: dict) -> list[dict]:
    """One executor job: arm ``job['arm']`` of seed ``job['seed']`` (rows as dicts)."""
    seed = int(job["seed"])
    return _refined_arm(setup, seed) if job["arm"] == "refined" else _random_arm(setup, seed)


def _seed_table(setup: RefineSetup, seed: int, refined: list[dict], random: list[dict]) -> pd.DataFrame:
    k = setup.rounds
    log.info("refine seed %d: test accuracy %.4f -> refined %.4f, random %.4f", seed, refined[0]["test_accuracy"], refined[-1]["test_accuracy"], random[k - 1]["test_accuracy"])
    return pd.DataFrame(refined + random)


def run_refinement(setup: RefineSetup, seed: int) -> pd.DataFrame:
    """Both arms for one seed, here: one row per (arm, round) with the metrics of that round's model.

    Columns: seed, arm, round, n_train, n_removed, flipped_removed, flipped_remaining, dcs,
    test_accuracy, test_correct (of n_test; null for multi-label data), n_test, heldout_correct,
    n_heldout, test_macro_f1, score_val_loss, score_val_accuracy, heldout_loss,
    heldout_accuracy, heldout_gap (held-out minus scoring-part loss), best_epoch. Rows: round 0
    of both arms, the refined rounds, the random rounds."""
    return _seed_table(setup, seed, _refined_arm(setup, seed), _random_arm(setup, seed))


def run(setup: RefineSetup, seeds: list[int], compute=None) -> pd.DataFrame:
    """All seeds; rows ordered by seed, then as :func:`run_refinement`. Each (seed, arm) is a
    job of ``compute`` (:func:`sampleval.runtime.compute.run_jobs`; default: here, one after another),
    gathered in that order, so the table is the same at any worker count. On a pool or Ray
    ``setup`` must pickle (a module-level ``scorer``)."""
    from sampleval.runtime.compute import SERIAL, run_jobs

    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"refine.seeds must be distinct and non-empty, got {seeds}")
    jobs = [{"seed": int(s), "arm": arm} for s in seeds for arm in ARMS]
    results = run_jobs(arm_job, jobs, compute or SERIAL, shared=setup, desc="refine",
                       labels=[f"seed {j['seed']} {j['arm']} arm" for j in jobs])
    tables = [_seed_table(setup, int(s), results[2 * i], results[2 * i + 1]) for i, s in enumerate(seeds)]
    return pd.concat(tables, ignore_index=True)


SUMMARY_COLUMNS = ("dcs", "test_accuracy", "test_macro_f1", "flipped_remaining", "score_val_loss", "score_val_accuracy", "heldout_loss", "heldout_accuracy", "heldout_gap")
TESTED = ("test_accuracy", "test_macro_f1", "dcs", "heldout_accuracy", "heldout_gap")
COUNTS = {"test_accuracy": ("test_correct", "n_test"), "heldout_accuracy": ("heldout_correct", "n_heldout")}  # tested on counts


def summarize(table: pd.DataFrame, alpha: float = 0.05, n_bootstrap: int = 10000) -> dict:
    """Means and sds per (arm, round), and per round r >= 1 the paired test of refined against
    random over seeds (``sampleval.experiments.stats.paired_test``) for each metric in :data:`TESTED`, with
    Benjamini-Hochberg over the rounds (one family per metric) and Cohen's d_z. Accuracies are
    tested on the integer correct-counts (:data:`COUNTS`; multi-class data), the other metrics on
    their unrounded values."""
    from scipy.stats import false_discovery_control

    from sampleval.experiments.stats import paired_test

    out: dict = {"n_seeds": int(table["seed"].nunique())}
    rounds = sorted(table["round"].unique())
    for arm in ARMS:
        part = table[table["arm"] == arm]
        out[arm] = {}
        for r in rounds:
            cell = part[part["round"] == r]
            entry = {"n_train": int(cell["n_train"].iloc[0])}
            for col in SUMMARY_COLUMNS:
                entry[col] = float(cell[col].mean())
                entry[f"{col}_sd"] = float(cell[col].std(ddof=1)) if len(cell) > 1 else 0.0
            out[arm][f"round_{r}"] = entry
    tests: dict = {}
    for metric in TESTED:
        rows = []
        for r in rounds[1:]:
            a = table[(table["arm"] == "refined") & (table["round"] == r)].sort_values("seed")
            b = table[(table["arm"] == "random") & (table["round"] == r)].sort_values("seed")
            if not np.array_equal(a["seed"].to_numpy(), b["seed"].to_numpy()):
                raise ValueError(f"refine: refined and random arms of round {r} have different seeds")
            if metric in COUNTS and table[COUNTS[metric][0]].notna().all():  # accuracy: on the integer correct-counts
                correct, size = COUNTS[metric]
                res = paired_test(a[correct].to_numpy(np.int64), b[correct].to_numpy(np.int64), alpha=alpha, n_bootstrap=n_bootstrap,
                                  n_test=int(a[size].iloc[0]))
            else:
                res = paired_test(a[metric].to_numpy(float), b[metric].to_numpy(float), alpha=alpha, n_bootstrap=n_bootstrap)
            rows.append({"round": int(r), **res})
        ps = [row["p"] for row in rows]
        qs = false_discovery_control(np.asarray(ps, float), method="bh") if ps else []
        for row, q in zip(rows, qs):
            row["p_bh"] = float(q)
            row["significant"] = bool(q <= alpha)
        tests[metric] = {f"round_{row.pop('round')}": row for row in rows}
    out["tests"] = tests
    return out


def dcs_tracks_quality(table: pd.DataFrame) -> dict:
    """Does DCS track data quality? Over every (seed, arm, round) row, the Spearman correlation of
    DCS with test accuracy and with the number of flipped labels remaining (NaN when constant)."""
    from scipy.stats import spearmanr

    out = {}
    for col in ("test_accuracy", "flipped_remaining"):
        x, y = table["dcs"].to_numpy(float), table[col].to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y)
        out[f"spearman_dcs_{col}"] = float(spearmanr(x[ok], y[ok]).statistic) if ok.sum() > 2 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0 else math.nan
    return out


def refine_plot(table: pd.DataFrame, summary: dict, path) -> None:
    """Four panels against the round: DCS, test accuracy, flipped labels remaining and held-out
    validation loss; refined and random arms as mean +- sd over seeds, seeds as thin lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("dcs", "DCS (scoring part of val)"), ("test_accuracy", "test accuracy"), ("flipped_remaining", "flipped labels remaining"),
              ("heldout_loss", "held-out val loss (never scored)")]
    colors = {"refined": "tab:blue", "random": "tab:orange"}
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    for ax, (col, title) in zip(axes, panels):
        for arm in ARMS:
            part = table[table["arm"] == arm]
            for _, seed_rows in part.groupby("seed"):
                ax.plot(seed_rows["round"], seed_rows[col], color=colors[arm], lw=0.5, alpha=0.3)
            g = part.groupby("round")[col]
            m, s = g.mean(), g.std(ddof=1).fillna(0)
            ax.errorbar(m.index, m.values, yerr=s.values, color=colors[arm], lw=2, capsize=3, marker="o", label=f"{arm} removal")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("round")
        tests = summary.get("tests", {}).get(col, {})
        for key, t in tests.items():  # BH-adjusted p of refined vs random, per round
            ax.annotate(f"q={t['p_bh']:.2g}", (int(key.split("_")[1]), 0.02), xycoords=("data", "axes fraction"), ha="center", fontsize=7, color="0.3")
        ax.set_xticks(sorted(table["round"].unique()))
    last = f"round_{int(table['round'].max())}"
    t = summary.get("tests", {}).get("test_accuracy", {}).get(last)
    note = f"; last round, test accuracy refined - random: {t['mean_diff']:+.4f}, p = {t['p']:.3g}, d_z = {t['cohen_dz'] if t['cohen_dz'] is None else round(t['cohen_dz'], 2)}" if t else ""
    axes[2].legend(fontsize=8, loc="center right")
    fig.suptitle(f"Refinement by {summary.get('ranking')} vs random removal of the same sizes ({summary.get('n_seeds')} seeds, "
                 f"{summary.get('n_remove_per_round')} samples per round){note}", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)
