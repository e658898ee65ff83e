"""The scores table (``data/influence/scores.parquet``) and its summary metrics.

Schema, one row per training sample:

- ``sample_id`` (str), ``split`` ('train'), ``label`` (as trained on), ``clean_label``,
  ``flipped`` (bool; the label was changed by noise injection);
- one float64 column per estimator (``tracin``, ``tracincp``, ...) plus the extra
  columns estimators return (``tracin_epoch_NNN`` per checkpoint, ``self_influence``).

Sign: positive = helpful (the sample lowers the summed validation loss), negative =
harmful. Magnitude columns (the registry's kind, :func:`sampleval.influence.registry.column_kind`:
``self_influence`` and every ``*_self_influence``) are non-negative; high means
unusual/suspicious.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as st
from sklearn.metrics import roc_auc_score

from sampleval.data.prepared import DataError, Prepared
from sampleval.influence import registry
from sampleval.influence.registry import MAGNITUDE, column_kind
from sampleval.influence.s_shapedness import s_shapedness
from sampleval.influence.tracin_variants import variant_scores

BASE_COLUMNS = ["sample_id", "split", "label", "clean_label", "flipped"]


def merge_scores(prepared: Prepared, methods: list[str], methods_dir: str | Path) -> pd.DataFrame:
    table = prepared.table[prepared.table["split"] == "train"][BASE_COLUMNS].reset_index(drop=True)
    for method in methods:
        path = Path(methods_dir) / f"{method}.parquet"
        if not path.exists():
            raise DataError(f"influence scores for '{method}' missing at {path}; run `dvc repro` to compute them")
        part = pd.read_parquet(path)
        if not np.array_equal(part["sample_id"].to_numpy(), table["sample_id"].to_numpy()):
            raise DataError(f"{path} does not cover the current training set in order; rerun `dvc repro influence`")
        clash = set(part.columns[1:]) & set(table.columns)
        if clash:
            raise DataError(f"estimator '{method}' returned columns already present: {sorted(clash)}")
        table = pd.concat([table, part.drop(columns="sample_id")], axis=1)
    return table


def suspicion(table: pd.DataFrame, column: str) -> np.ndarray:
    """Higher = more likely a bad label: low influence (harmful) or high self-influence
    (:func:`sampleval.influence.registry.suspicion` on the table's column)."""
    return registry.suspicion(column, table[column].to_numpy(dtype=float))


def ranking_columns(table: pd.DataFrame, methods: list[str]) -> list[str]:
    """The estimators' main columns, then every magnitude column present (self-influences)."""
    extra = [c for c in table.columns if column_kind(c) == MAGNITUDE]
    return list(dict.fromkeys(list(methods) + extra))


def _readable(value):
    """Diagnostics for metrics JSON (rounded to 4 decimals there): tiny non-zero numbers
    such as CG residuals are kept as text in scientific notation."""
    if isinstance(value, float) and value != 0 and abs(value) < 1e-3:
        return f"{value:.2e}"
    if isinstance(value, dict):
        return {k: _readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_readable(v) for v in value]
    return value


def merge_diagnostics(methods: list[str], methods_dir: str | Path) -> dict:
    """``{method: diagnostics}`` from each estimator's ``<method>.json`` next to its parquet."""
    out = {}
    for method in methods:
        path = Path(methods_dir) / f"{method}.json"
        if not path.exists():
            raise DataError(f"diagnostics for '{method}' missing at {path}; run `dvc repro influence`")
        out[method] = _readable(json.loads(path.read_text()))
    return out


def detection_curve(flipped: np.ndarray, suspicion_scores: np.ndarray, n_points: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """Share of flipped labels found against share of the training set inspected, most suspicious first."""
    order = np.argsort(-suspicion_scores, kind="stable")
    found = np.concatenate([[0], np.cumsum(flipped[order])]) / max(flipped.sum(), 1)
    inspected = np.linspace(0, 1, len(found))
    grid = np.linspace(0, 1, n_points)
    return grid, np.interp(grid, inspected, found)


def detection_summary(flipped: np.ndarray, susp: np.ndarray) -> dict:
    n_flipped = int(flipped.sum())
    if n_flipped == 0 or n_flipped == len(flipped):
        return {}
    order = np.argsort(-susp, kind="stable")
    out = {
        "found_in_top_n_flipped": float(flipped[order[:n_flipped]].mean()),
        "auroc": float(roc_auc_score(flipped, susp)),
    }
    for share in (0.05, 0.1, 0.2):
        k = int(round(share * len(flipped)))
        out[f"found_inspecting_{int(share * 100)}pct"] = float(flipped[order[:k]].sum() / n_flipped)
    return out


def influence_summary(table: pd.DataFrame, methods: list[str]) -> dict:
    flipped = table["flipped"].to_numpy(dtype=bool)
    out: dict = {"n_train": int(len(table)), "n_flipped": int(flipped.sum())}
    for col in ranking_columns(table, methods):
        values = table[col].to_numpy(dtype=float)
        entry = {
            "min": float(values.min()),
            "max": float(values.max()),
            "share_negative": float((values < 0).mean()),
            "s_shapedness": s_shapedness(values),
        }
        detection = detection_summary(flipped, suspicion(table, col))
        if detection:
            entry["detect"] = detection
        out[col] = entry
    if "tracin" in table and "tracincp" in table:
        # Captum sums every checkpoint: compare it with our sum over all of them, whatever
        # checkpoints the tracin column itself keeps (influence.options.tracin)
        every = [c for c in table if c.startswith("tracin_epoch_")]
        a = variant_scores(table, "all") if every else table["tracin"].to_numpy(float)
        b = table["tracincp"].to_numpy(float)
        out["agreement"] = {
            "spearman": float(st.spearmanr(a, b).statistic),
            "pearson": float(st.pearsonr(a, b).statistic),
            "max_rel_error": float(np.abs(a - b).max() / np.abs(b).max()),
        }
    return out
