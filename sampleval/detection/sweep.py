"""The sweep: every (noise setting, seed) cell as a job of :func:`sampleval.runtime.compute.run_jobs`.

:func:`run_sweep` runs the cells ``settings x seeds`` (settings outer, seeds inner: the order
of the results, whatever ran where) on ``compute``; inside a cell job, cleanlab's folds run
one after another (``compute.serial()``). A job's spec holds everything its cell depends on
(:func:`cell_job_spec`: the setting's noise, the seed, the rankings, the combinations, the
folds and the :class:`sampleval.detection.recipe.CellRecipe`), and
its result is JSON (the table as a dict of columns, and the record), so a
:class:`sampleval.runtime.compute.JobCache` keeps finished cells: adding a setting or a seed
computes only the new cells, and a cell whose inputs did not change is read back.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sampleval.runtime.compute import SERIAL, Compute, JobCache, run_jobs
from sampleval.detection.cell import run_cell
from sampleval.detection.recipe import CellRecipe, NoiseSetting, cell_name
from sampleval.detection.settings import DetectParams

if TYPE_CHECKING:
    from sampleval.config import Params


def cell_job_spec(det: DetectParams, recipe: CellRecipe, setting: str, seed: int) -> dict:
    """The job of one cell: small, JSON, and all a cell depends on."""
    if setting not in det.settings:
        raise ValueError(f"detect setting {setting!r} is not in 'detect.settings' ({', '.join(det.settings)})")
    return {
        "setting": setting,
        "spec": det.settings[setting],
        "seed": int(seed),
        "rankings": list(det.rankings),
        "combinations": dict(det.combinations or {}),
        "folds": int(det.cleanlab_folds),
        "recipe": recipe.to_json(),
    }


def digits_fingerprint(recipe: CellRecipe) -> str:
    """Identifies the cells' input data: the digits prepared with the recipe's ``data`` and
    split ``seed`` (the cells prepare it themselves, so these params define it)."""
    text = json.dumps({"data": dataclasses.asdict(recipe.data), "seed": recipe.seed}, sort_keys=True, default=str)
    return "digits-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(obj):
    """numpy scalars and arrays -> Python (JSON) values."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def cell_job(compute: Compute | None, job: dict) -> dict:
    """One cell, as an executor job: ``{"table": {column: values}, "record": {...}}``.
    ``compute`` (the shared object) is where cleanlab's folds run: serial inside a sweep."""
    setting = NoiseSetting.from_params(job["setting"], job["spec"])
    table, record = run_cell(CellRecipe.from_json(job["recipe"]), setting, job["seed"], job["rankings"], job["combinations"], job["folds"], compute or SERIAL)
    return {"table": {c: _plain(table[c].to_numpy()) for c in table.columns}, "record": _plain(record)}


def table_from_job(columns: dict) -> pd.DataFrame:
    """The cell's table from its job result (the schema in :mod:`sampleval.detection`)."""
    table = pd.DataFrame({c: pd.Series(v) for c, v in columns.items()})
    table["label"] = table["label"].astype(np.int64)
    table["clean_label"] = table["clean_label"].astype(np.int64)
    table["flipped"] = table["flipped"].astype(bool)
    for c in columns:
        if c not in ("sample_id", "label", "clean_label", "flipped"):
            table[c] = table[c].astype(np.float64)
    return table


def run_sweep(
    params: Params, settings: list[str], seeds: list[int], compute: Compute = SERIAL, cache_root: str | Path | None = None,
) -> list[tuple[str, pd.DataFrame, dict]]:
    """``[(cell name, table, record)]`` for ``settings x seeds`` (settings outer) of ``params.detect``,
    run as jobs of ``compute``; with ``cache_root``, finished cells are kept there and read back."""
    cells = [(s, int(seed)) for s in settings for seed in seeds]
    if len(set(cells)) != len(cells):
        raise ValueError(f"detect.run and detect.seeds must not repeat a cell: {[cell_name(*c) for c in cells]}")
    recipe = CellRecipe.of(params)
    jobs = [cell_job_spec(params.detect, recipe, s, seed) for s, seed in cells]
    cache = JobCache(Path(cache_root), digits_fingerprint(recipe)) if cache_root is not None else None
    results = run_jobs(
        cell_job, jobs, compute, shared=compute.serial(), desc="detect",
        labels=[f"{cell_name(s, seed)} (setting {s}, seed {seed})" for s, seed in cells], cache=cache,
    )
    return [(cell_name(s, seed), table_from_job(r["table"]), r["record"]) for (s, seed), r in zip(cells, results)]
