"""The subset experiment's retrainings: every cell's subsets, trained for every seed as
executor jobs (:mod:`sampleval.runtime.compute`), assembled into the cells' records
(schema: :mod:`sampleval.experiments.subset_cells`)."""
from __future__ import annotations

import numpy as np

from sampleval.experiments.subset_cells import CellKey
from sampleval.runtime.compute import SERIAL, pack_mask, run_jobs, unpack_mask
from sampleval.data.prepared import Prepared, Split
from sampleval.training.retrain import class_composition, train_and_evaluate
from sampleval.io import hash_ids
from sampleval.experiments.stats import correct_count
from sampleval.experiments.subsets import RANDOM, VARIANTS, choose_subset, helpfulness, parse_strategy
from sampleval.training.loop import TrainConfig


def retrain_subset_job(shared: tuple[Prepared, TrainConfig], job: dict) -> dict:
    """Executor job: train on the ``job['keep']`` subset (a packed mask) with ``job['seed']``;
    returns the float test metrics (unrounded), ``n_test`` and ``n_correct`` (the correct-count
    behind the accuracy; None for multi-label data, whose accuracy is a mean over labels)."""
    prepared, cfg = shared
    tr = prepared.split("train")
    keep = unpack_mask(job["keep"], len(tr.ids))
    _, metrics = train_and_evaluate(prepared, cfg, int(job["seed"]), keep=keep)
    out = {k: v for k, v in metrics["test"].items() if isinstance(v, float)}
    n_test = len(prepared.split("test").ids)
    out["n_correct"] = correct_count(out["accuracy"], n_test) if prepared.task == "multiclass" else None
    out["n_test"] = int(n_test)
    return out


def run_subset_cell(
    prepared: Prepared,
    cfg: TrainConfig,
    strategy: str,
    fraction: float,
    seeds: list[int],
    variant: str = "global",
    scores=None,
    ranking: str | None = None,
    compute=None,
) -> dict:
    """One cell of :func:`run_subset_cells` (see there)."""
    random = parse_strategy(strategy)[1] == RANDOM
    key = CellKey(RANDOM if random or ranking is None else ranking, variant, strategy, fraction)
    return run_subset_cells(prepared, cfg, [key], seeds, {} if scores is None else {ranking: scores}, compute)[key]


def run_subset_cells(prepared: Prepared, cfg: TrainConfig, cells: list, seeds: list[int], scores: dict, compute=None, cache=None) -> dict:
    """Retrain on each cell's subset for each seed; return ``{CellKey: record}``
    (schema: :mod:`sampleval.experiments.subset_cells`).

    ``scores``: ``{ranking: table with sample_id and the ranking column}`` for the ranked
    cells; random controls (ranking ``random``) read none, and then depend on nothing but
    fraction, variant and seeds; class-matched controls (``<strategy>-matched``) read their
    ranking's scores for the strategy's class composition (by given label). Ranked strategies
    choose the same subset for every seed (only the training seed varies); random and
    class-matched controls draw a new subset per seed with that seed, and train with the same
    seed as the strategies they control.

    Every (subset, seed) retraining is one job of ``compute`` (:mod:`sampleval.runtime.compute`);
    cells that choose the same subset share its retrainings, and with ``cache`` retrainings
    done before (the same subset, seed, data and recipe) are read back."""
    tr = prepared.split("train")
    n = len(tr.ids)
    everyone = class_composition(tr, np.ones(n, dtype=bool), prepared.classes, prepared.task)
    plans: dict = {}
    jobs: dict[str, dict] = {}  # packed mask + seed -> job (identical retrainings run once)
    labels: dict[str, str] = {}
    for key in cells:
        helpful = _cell_helpfulness(key, scores, tr, prepared.task)
        strata = tr.y if key.variant == "stratified" else None
        plans[key] = []
        for seed in seeds:
            subset = choose_subset(tr.ids, helpful, key.strategy, key.fraction, seed, strata, labels=tr.y)
            job = {"keep": pack_mask(subset.keep), "seed": int(seed)}
            jid = f"{job['keep']}|{seed}"
            jobs.setdefault(jid, job)
            labels.setdefault(jid, f"{key.name} seed {seed}")
            plans[key].append((seed, subset, jid))
    order = list(jobs)
    results = dict(zip(order, run_jobs(retrain_subset_job, [jobs[j] for j in order], compute or SERIAL, shared=(prepared, cfg),
                                       labels=[labels[j] for j in order], desc="subset retrainings", cache=cache)))
    return {key: _cell_record(key, plan, results, tr, prepared, everyone, seeds) for key, plan in plans.items()}


def _cell_helpfulness(key: CellKey, scores: dict, tr: Split, task: str) -> np.ndarray | None:
    """The cell's helpfulness per training sample of ``tr`` (``None`` for a random control),
    after checking its variant and that its ranking's scores belong to this training set."""
    _, kind = parse_strategy(key.strategy)
    if key.variant not in VARIANTS:
        raise ValueError(f"unknown subset variant {key.variant!r} (allowed: {', '.join(VARIANTS)})")
    helpful = None
    if kind != RANDOM:
        table = scores.get(key.ranking)
        if table is None:
            raise ValueError(f"{key.strategy} needs a ranking's scores")
        if not np.array_equal(table["sample_id"].to_numpy().astype(str), tr.ids):
            raise ValueError("the influence scores do not match the prepared training set; rerun `dvc repro`")
        helpful = helpfulness(key.ranking, table[key.ranking].to_numpy(dtype=float))
    if key.variant == "stratified" and task != "multiclass":
        raise ValueError("the stratified subset variant is only defined for multi-class data; set subsets.variants to [global]")
    return helpful


def _cell_record(key: CellKey, plan: list, results: dict, tr: Split, prepared: Prepared, everyone: dict, seeds: list[int]) -> dict:
    """One cell's record: per seed the retraining's metrics and the chosen set, and the means over seeds."""
    per_seed: dict = {}
    for seed, subset, jid in plan:
        per_seed[str(seed)] = {
            **results[jid],
            "n_trained": int(subset.keep.sum()),
            "n_chosen": int(subset.chosen.sum()),
            "ids_sha256": hash_ids(tr.ids[subset.keep]),
            "flipped_in_chosen": int(tr.flipped[subset.chosen].sum()),
            "chosen_class_composition": class_composition(tr, subset.chosen, prepared.classes, prepared.task),
            "chosen_flipped_class_composition": class_composition(tr, subset.chosen & tr.flipped, prepared.classes, prepared.task),
        }
    metric_names = [k for k, v in per_seed[str(seeds[0])].items() if isinstance(v, float)]
    return {
        "ranking": key.ranking,
        "variant": key.variant,
        "strategy": key.strategy,
        "fraction": key.fraction,
        "n_train": int(len(tr.ids)),
        "train_class_composition": everyone,
        "mean": {m: float(np.mean([per_seed[s][m] for s in per_seed])) for m in metric_names},
        "seeds": per_seed,
    }


def json_record(obj):
    """A cell record as written: floats unrounded (the paired tests read them back exactly; accuracy
    also as the integer ``n_correct``), NaN and inf as null."""
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, dict):
        return {k: json_record(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_record(v) for v in obj]
    return obj
