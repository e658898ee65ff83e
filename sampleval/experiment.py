"""One recipe for the baseline and every subset cell: train, select on val, test once."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .data.prepared import Prepared, Split
from .evaluation import epoch_metrics_fn, evaluate
from .training import TrainConfig, TrainResult, train


def subset_split(split: Split, keep: np.ndarray) -> Split:
    return Split(x=split.x[keep], y=split.y[keep], ids=split.ids[keep], clean_y=split.clean_y[keep], flipped=split.flipped[keep])


def train_and_evaluate(
    prepared: Prepared,
    cfg: TrainConfig,
    seed: int,
    keep: np.ndarray | None = None,
    ckpt_dir: str | Path | None = None,
    resume: bool = False,
    splits: tuple[Split, Split, Split] | None = None,
) -> tuple[TrainResult, dict]:
    """Train on the training split (or its ``keep`` subset) and evaluate on val and test.

    Returns the training result and ``{'val': metrics, 'test': metrics[, 'thresholds']}``.
    """
    tr, va, te = splits or (prepared.split("train"), prepared.split("val"), prepared.split("test"))
    if keep is not None:
        tr = subset_split(tr, keep)
    result = train(
        tr.x,
        tr.y,
        va.x,
        va.y,
        prepared.task,
        prepared.n_classes,
        cfg,
        seed,
        ckpt_dir=ckpt_dir,
        resume=resume,
        flip_augment=prepared.task == "multilabel",  # mirror images are valid X-rays, not valid digits
        val_metrics=epoch_metrics_fn(va, prepared.task, prepared.classes),
    )
    return result, evaluate(result.model, va, te, prepared.task, prepared.classes, amp=cfg.amp)


def class_composition(split: Split, mask: np.ndarray, classes: list[str], task: str) -> dict[str, int]:
    """Per-class counts (given labels) of the samples in ``mask``."""
    y = split.y[mask]
    if task == "multilabel":
        return {c: int(n) for c, n in zip(classes, y.sum(axis=0))}
    return {c: int((y == i).sum()) for i, c in enumerate(classes)}


def run_subset_cell(
    prepared: Prepared,
    cfg: TrainConfig,
    strategy: str,
    fraction: float,
    seeds: list[int],
    variant: str = "global",
    scores=None,
    ranking: str | None = None,
) -> dict:
    """Retrain on the subset for each seed; return the cell's JSON-ready record
    (schema: :mod:`sampleval.cells`).

    ``scores``: a table with ``sample_id`` and the ``ranking`` column (ranked strategies
    only; None for random controls, which then depend on nothing but fraction, variant
    and seeds). Ranked strategies choose the same subset for every seed (only the
    training seed varies); random controls draw a new subset per seed with that seed,
    and train with the same seed as the strategies they control.
    """
    from .io import hash_ids
    from .subsets import RANDOM, VARIANTS, choose_subset, helpfulness, parse_strategy

    _, kind = parse_strategy(strategy)
    if variant not in VARIANTS:
        raise ValueError(f"unknown subset variant {variant!r} (allowed: {', '.join(VARIANTS)})")
    splits = (prepared.split("train"), prepared.split("val"), prepared.split("test"))
    tr = splits[0]
    helpful = None
    if kind != RANDOM:
        if scores is None or ranking is None:
            raise ValueError(f"{strategy} needs a ranking's scores")
        if not np.array_equal(scores["sample_id"].to_numpy().astype(str), tr.ids):
            raise ValueError("the influence scores do not match the prepared training set; rerun `dvc repro`")
        helpful = helpfulness(ranking, scores[ranking].to_numpy(dtype=float))
    if variant == "stratified" and prepared.task != "multiclass":
        raise ValueError("the stratified subset variant is only defined for multi-class data; set subsets.variants to [global]")
    strata = tr.y if variant == "stratified" else None
    record: dict = {
        "ranking": ranking if kind != RANDOM else RANDOM,
        "variant": variant,
        "strategy": strategy,
        "fraction": fraction,
        "n_train": int(len(tr.ids)),
        "train_class_composition": class_composition(tr, np.ones(len(tr.ids), dtype=bool), prepared.classes, prepared.task),
    }
    per_seed: dict = {}
    for seed in seeds:
        subset = choose_subset(tr.ids, helpful, strategy, fraction, seed, strata)
        _, metrics = train_and_evaluate(prepared, cfg, seed, keep=subset.keep, splits=splits)
        per_seed[str(seed)] = {
            **{k: v for k, v in metrics["test"].items() if isinstance(v, float)},
            "n_trained": int(subset.keep.sum()),
            "n_chosen": int(subset.chosen.sum()),
            "ids_sha256": hash_ids(tr.ids[subset.keep]),
            "flipped_in_chosen": int(tr.flipped[subset.chosen].sum()),
            "chosen_class_composition": class_composition(tr, subset.chosen, prepared.classes, prepared.task),
            "chosen_flipped_class_composition": class_composition(tr, subset.chosen & tr.flipped, prepared.classes, prepared.task),
        }
    metric_names = [k for k, v in per_seed[str(seeds[0])].items() if isinstance(v, float)]
    record["mean"] = {m: float(np.mean([per_seed[s][m] for s in per_seed])) for m in metric_names}
    record["seeds"] = per_seed
    return record
