"""One sweep cell: (noise setting, seed) -> the per-sample rankings and their detection metrics.

A cell runs, in one process and through the library:

1. the digits data, split with the project's ``seed`` (the same split in every cell), with
   the cell's label noise injected into the training split by prepare's noise step
   (:func:`sampleval.data.noise.apply_noise`), drawn with the cell's seed (or the setting's
   fixed ``noise_seed``);
2. the baseline, trained with the project's recipe (``model``, ``train``) and the cell's
   seed, one checkpoint per epoch, best epoch on validation
   (:func:`sampleval.training.retrain.train_and_evaluate`);
3. every estimator named in ``rankings`` through the estimator registry
   (:func:`sampleval.influence.runner.run_estimator`), oriented as suspicion scores
   (:mod:`.rankings`); ``cleanlab_logreg`` is the registry's ``cleanlab`` estimator
   (logistic regression on pixels);
4. cleanlab on out-of-fold probabilities of the same model and recipe (:mod:`.oof`), a
   seeded random ranking, and the rank-average combinations.

With ``noise_seed`` unset, a cell at seed s on the default setting (40 % of 9s -> 4) is
the default pipeline run with ``seed: s`` except for the split, which stays the one of the
project's ``seed``; with the project's seed, cell s = 0 is the default pipeline itself.

The sweep is a benchmark on digits: with another ``data.source`` (chest X-rays) it still
runs on digits (8x8, ``data.limit`` applies), with the small CNN and the ``train`` recipe.
"""
from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sampleval.influence.registry import estimator_of
from sampleval.detection.quality import detection_metrics, flag_metrics
from sampleval.detection.oof import cleanlab_scores, cnn_fit_predict, noise_structure
from sampleval.detection.rankings import orient, random_ranking, rank_average
from sampleval.detection.recipe import BASE_COLUMNS, CellRecipe, NoiseSetting, cell_name, clean_digits, noise_seed_of
from sampleval.detection.settings import ALWAYS  # computed in every cell, whatever detect.rankings says
from sampleval.influence.settings import InfluenceSettings
from sampleval.training.out_of_fold import out_of_fold_probs

if TYPE_CHECKING:
    from sampleval.training.loop import TrainConfig

log = logging.getLogger(__name__)

FOLDS_KEY = "detect.cleanlab_folds"  # what sets the cells' cleanlab folds


def digits_data(recipe: CellRecipe, setting: NoiseSetting, seed: int, workdir: Path):
    """The prepared digits with the cell's noise (see the module docstring): prepared without
    noise, then the cell's noise through prepare's noise step (:func:`sampleval.data.noise.apply_noise`),
    drawn with the cell's seed or the setting's ``noise_seed``."""
    from sampleval.data.noise import apply_noise
    from sampleval.data.prepared import Prepared

    prepared = clean_digits(recipe, workdir)
    table = prepared.table.copy()
    apply_noise(table, setting.noise(), prepared.classes, prepared.task, noise_seed_of(setting, seed))
    return Prepared(images=np.asarray(prepared.images), table=table, task=prepared.task, classes=prepared.classes)


def influence_context(prepared, result, cfg: "TrainConfig", influence: InfluenceSettings, seed: int):
    """The estimators' input for a baseline trained in this process: the influence package's one
    builder (:func:`sampleval.influence.core.make_context`) over this cell's data, recipe and checkpoints."""
    from sampleval.influence.core import make_context
    from sampleval.influence.context import Baseline, load_checkpoints

    baseline = Baseline(prepared, cfg, load_checkpoints(result.checkpoints), result.best_state, result.best_epoch)
    return make_context(baseline, InfluenceSettings.from_params(influence, seed))


def estimator_rankings(ctx, rankings: list[str]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Suspicion columns of the named estimators: each main column plus its self-influence extras."""
    from sampleval.influence.runner import run_estimator

    out, seconds = {}, {}
    for name in rankings:
        estimator = estimator_of(name)
        t0 = time.perf_counter()
        columns = run_estimator(estimator, ctx)
        seconds[name] = time.perf_counter() - t0
        out[name] = orient(estimator, columns[estimator])
        for col, values in columns.items():
            if col != estimator and col.endswith("self_influence") and col.startswith(estimator):
                out[col] = orient(col, values)
    return out, seconds


def run_cell(
    recipe: CellRecipe,
    setting: NoiseSetting,
    seed: int,
    rankings: list[str],
    combinations: dict[str, list[str]] | None = None,
    folds: int = 5,
    compute=None,
) -> tuple[pd.DataFrame, dict]:
    """Run one cell; return its table (schema in :mod:`sampleval.detection`) and JSON record.
    ``compute``: where cleanlab's folds run (default: here, one after another, as inside a
    sweep job; :mod:`.sweep` runs the cells themselves as jobs)."""
    from sampleval.training.retrain import train_and_evaluate

    cfg = recipe.train
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="detect-") as tmp:
        work = Path(tmp)
        prepared = digits_data(recipe, setting, seed, work)
        tr = prepared.split("train")
        t0 = time.perf_counter()
        result, metrics = train_and_evaluate(prepared, cfg, seed, ckpt_dir=work / "checkpoints")
        timings["train"] = time.perf_counter() - t0
        ctx = influence_context(prepared, result, cfg, recipe.influence, seed)
        columns, seconds = estimator_rankings(ctx, [r for r in rankings if r not in ALWAYS])
        timings.update(seconds)
    t0 = time.perf_counter()
    probs, cl = cleanlab_oof(prepared, cfg, seed, folds, compute)
    timings["cleanlab"] = time.perf_counter() - t0
    columns["cleanlab"] = 1.0 - cl["quality"]
    columns["random"] = random_ranking(len(tr.ids), seed)
    for name, components in (combinations or {}).items():
        columns[name] = rank_average(columns, components)

    table = pd.DataFrame({"sample_id": tr.ids, "label": tr.y, "clean_label": tr.clean_y, "flipped": tr.flipped})
    for name, values in columns.items():
        table[name] = np.asarray(values, dtype=np.float64)
    record = cell_record(setting, seed, tr, result, metrics, probs, cl, table)
    log.info("cell %s: %s", cell_name(setting.name, seed), ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    return table, record


def cleanlab_oof(prepared, cfg, seed: int, folds: int, compute=None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """cleanlab on out-of-fold probabilities of the cell's model and recipe (:mod:`.oof`, the folds
    on ``compute``, default here): ``(probs, {"quality", "issue"})``."""
    from sampleval.runtime.compute import SERIAL

    tr, va = prepared.split("train"), prepared.split("val")
    fit_predict = cnn_fit_predict(tr.x, tr.y, va.x, va.y, prepared.n_classes, cfg, seed)
    probs, _ = out_of_fold_probs(tr.y, prepared.n_classes, fit_predict, folds, seed, compute or SERIAL, key=FOLDS_KEY)
    return probs, cleanlab_scores(tr.y, probs)


def cell_record(setting: NoiseSetting, seed: int, tr, result, metrics: dict, probs: np.ndarray, cl: dict, table: pd.DataFrame) -> dict:
    """The cell's JSON record: its noise, baseline, cleanlab's flagged set, the noise structure and
    every ranking's detection metrics (the ranking columns of ``table``)."""
    best = next(h for h in result.history if h["epoch"] == result.best_epoch)
    return {
        "setting": setting.name,
        "seed": int(seed),
        "noise": {**dataclasses.asdict(setting.noise()), "noise_seed": noise_seed_of(setting, seed)},
        "n_train": int(len(tr.ids)),
        "n_flipped": int(tr.flipped.sum()),
        "baseline": {
            "best_epoch": int(result.best_epoch),
            "val_loss": float(best["val_loss"]),
            "test_accuracy": float(metrics["test"]["accuracy"]),
            "test_macro_f1": float(metrics["test"]["macro_f1"]),
        },
        "cleanlab_find_label_issues": flag_metrics(tr.flipped, cl["issue"]),
        "noise_structure": noise_structure(tr.y, probs),
        "rankings": {name: detection_metrics(tr.flipped, table[name].to_numpy()) for name in table.columns[len(BASE_COLUMNS):]},
    }
