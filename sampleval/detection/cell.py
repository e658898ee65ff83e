"""One sweep cell: (noise setting, seed) -> the per-sample rankings and their detection metrics.

A cell runs, in one process and through the library:

1. the digits data, split with the project's ``seed`` (the same split in every cell), with
   the cell's label noise injected into the training split by
   :func:`sampleval.data.noise.inject_noise`, drawn with the cell's seed (or the setting's
   fixed ``noise_seed``);
2. the baseline, trained with the project's recipe (``model``, ``train``) and the cell's
   seed, one checkpoint per epoch, best epoch on validation
   (:func:`sampleval.experiment.train_and_evaluate`);
3. every estimator named in ``rankings`` through the estimator registry
   (:func:`sampleval.influence.run_estimator`), oriented as suspicion scores
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

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import detection_metrics, flag_metrics
from .oof import cleanlab_scores, cnn_fit_predict, noise_structure, out_of_fold_probs
from .rankings import orient, random_ranking, rank_average

log = logging.getLogger(__name__)

BASE_COLUMNS = ["sample_id", "label", "clean_label", "flipped"]
ALWAYS = ("cleanlab", "random")  # computed in every cell, whatever detect.rankings says
ESTIMATOR_OF = {"cleanlab_logreg": "cleanlab"}  # column name -> registry name where they differ


@dataclass
class NoiseSetting:
    name: str
    kind: str  # uniform | pairwise
    rate: float
    pairs: list[list[int]] = field(default_factory=list)
    noise_seed: int | None = None  # fixed noise draw (only the baseline seed varies), or None: the cell seed

    @classmethod
    def from_params(cls, name: str, spec: dict) -> "NoiseSetting":
        return cls(name=name, kind=spec["kind"], rate=float(spec["rate"]), pairs=[list(p) for p in spec.get("pairs") or []], noise_seed=spec.get("noise_seed"))

    def noise(self) -> dict:
        return {"kind": self.kind, "rate": self.rate, "pairs": self.pairs, "splits": ["train"]}


def cell_name(setting: str, seed: int) -> str:
    return f"{setting}-s{seed}"


def digits_data(data: dict, setting: NoiseSetting, split_seed: int, seed: int, workdir: Path):
    """The prepared digits with the cell's noise (see the module docstring)."""
    from ..data.noise import inject_noise
    from ..data.prepared import Prepared, load_prepared
    from ..prepare import prepare_dataset

    data = {**data, "source": "digits", "root": None}
    prepare_dataset(data, {"kind": "none", "rate": 0.0, "pairs": [], "splits": ["train"]}, split_seed, workdir / "prepared")
    prepared = load_prepared(workdir / "prepared")
    table = prepared.table.copy()
    noise_seed = seed if setting.noise_seed is None else int(setting.noise_seed)
    noisy, flipped = inject_noise(
        table["label"].to_numpy(), (table["split"] == "train").to_numpy(), setting.kind, setting.rate,
        prepared.n_classes, setting.pairs, np.random.default_rng(noise_seed),
    )
    table["label"], table["flipped"] = noisy, flipped
    return Prepared(images=np.asarray(prepared.images), table=table, task=prepared.task, classes=prepared.classes)


def influence_context(prepared, result, cfg, influence: dict, seed: int):
    """The estimators' input for a baseline trained in this process (the one place that
    builds it: adapt here when the influence package's context changes)."""
    import torch

    from ..influence import InfluenceContext
    from ..influence.core import Samples, load_checkpoints
    from ..models import build_model

    tr, va = prepared.split("train"), prepared.split("val")
    return InfluenceContext(
        model=build_model(cfg.model, tr.x.shape[1], prepared.n_classes, tr.x.shape[-1], None),
        loss_fn=result.loss_fn,
        checkpoints=load_checkpoints(result.checkpoints),
        final_state=result.best_state,
        train=Samples(tr.x, tr.y, prepared.task),
        val=Samples(va.x, va.y, prepared.task),
        task=prepared.task,
        n_classes=prepared.n_classes,
        batch_size=influence["batch_size"],
        damping=influence["damping"],
        cg_iterations=influence["cg_iterations"],
        seed=seed,
        tracin_method=influence["tracin_method"],
        device=torch.device("cpu"),
        final_epoch=result.best_epoch,
        options=dict(influence.get("options") or {}),
        train_config=cfg,  # trak retrains its ensemble with the cell's recipe
    )


def estimator_rankings(ctx, rankings: list[str]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Suspicion columns of the named estimators: each main column plus its self-influence extras."""
    from ..influence import run_estimator

    out, seconds = {}, {}
    for name in rankings:
        estimator = ESTIMATOR_OF.get(name, name)
        t0 = time.perf_counter()
        columns = run_estimator(estimator, ctx)
        seconds[name] = time.perf_counter() - t0
        out[name] = orient(estimator, columns[estimator])
        for col, values in columns.items():
            if col != estimator and col.endswith("self_influence") and col.startswith(estimator):
                out[col] = orient(col, values)
    return out, seconds


def run_cell(
    params: dict,
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
    from ..compute import SERIAL
    from ..experiment import train_and_evaluate
    from ..training import TrainConfig

    cfg = TrainConfig.from_params(params)
    if params["data"]["source"] != "digits":
        cfg.model, cfg.pretrained = "small_cnn", None
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="detect-") as tmp:
        work = Path(tmp)
        data = params["data"] if params["data"]["source"] == "digits" else {**params["data"], "image_size": 8}
        prepared = digits_data(data, setting, params["seed"], seed, work)
        tr, va = prepared.split("train"), prepared.split("val")
        t0 = time.perf_counter()
        result, metrics = train_and_evaluate(prepared, cfg, seed, ckpt_dir=work / "checkpoints")
        timings["train"] = time.perf_counter() - t0
        ctx = influence_context(prepared, result, cfg, params["influence"], seed)
        columns, seconds = estimator_rankings(ctx, [r for r in rankings if r not in ALWAYS])
        timings.update(seconds)
    t0 = time.perf_counter()
    fit_predict = cnn_fit_predict(tr.x, tr.y, va.x, va.y, prepared.n_classes, cfg, seed)
    probs, _ = out_of_fold_probs(tr.y, prepared.n_classes, fit_predict, folds, seed, compute or SERIAL)
    cl = cleanlab_scores(tr.y, probs)
    timings["cleanlab"] = time.perf_counter() - t0
    columns["cleanlab"] = 1.0 - cl["quality"]
    columns["random"] = random_ranking(len(tr.ids), seed)
    for name, components in (combinations or {}).items():
        columns[name] = rank_average(columns, components)

    table = pd.DataFrame({"sample_id": tr.ids, "label": tr.y, "clean_label": tr.clean_y, "flipped": tr.flipped})
    for name, values in columns.items():
        table[name] = np.asarray(values, dtype=np.float64)
    best = next(h for h in result.history if h["epoch"] == result.best_epoch)
    record = {
        "setting": setting.name,
        "seed": int(seed),
        "noise": {**setting.noise(), "noise_seed": seed if setting.noise_seed is None else int(setting.noise_seed)},
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
        "rankings": {name: detection_metrics(tr.flipped, table[name].to_numpy()) for name in columns},
    }
    log.info("cell %s: %s", cell_name(setting.name, seed), ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    return table, record
