"""Reading the suspects table (``data/label_issues.parquet``, written by :mod:`sampleval.reporting.suspects`;
schema there): what the report and the ``sampleval`` command show of it. Pandas only, so
the report stage does not import the rankings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sampleval.io import atomic_path


def found_in_top(table: pd.DataFrame, k: int | None = None) -> dict:
    """Flips among the top ``k`` rows (default: as many as there are flips); {} when unknown."""
    if table["flipped"].isna().all():
        return {}
    flipped = table["flipped"].fillna(False).to_numpy(bool)
    k = int(flipped.sum()) if k is None else k
    return {"k": k, "n_flipped": int(flipped.sum()), "found": int(flipped[:k].sum())}


def suspects_summary(table: pd.DataFrame, top_k: int, n: int = 10) -> dict:
    """What the report shows of the table: its ranking, top ``n`` rows and the flips found."""
    cols = ["rank", "sample_id", "given_label", "suggested_label", "suggested_prob", "score", "flipped"]
    top = [{k: (None if v is pd.NA else v) for k, v in row.items()} for row in table[cols].head(n).astype(object).to_dict("records")]
    top5 = found_in_top(table, -(-len(table) * 5 // 100))  # the top 5 % (rounded up): the headline's flips_top5
    return {"ranking": str(table["ranking"].iloc[0]) if len(table) else None, "top_k": int(top_k), "top": top,
            "found": found_in_top(table), "found_top5": top5}


def export_corrections(table: pd.DataFrame, top: int, path, task: str = "multiclass") -> pd.DataFrame:
    """A corrections file (:mod:`sampleval.data.corrections`) for the top ``top`` rows: relabel to
    the suggested label, or keep where the model agrees with the given label. Multi-class only."""
    if task != "multiclass":
        raise ValueError("export: relabelling is defined for multi-class data only; for multi-label data write remove/keep rows by hand")
    if top < 1:
        raise ValueError(f"export: --top must be at least 1, got {top}")
    top_rows = table.sort_values("rank").head(top)
    same = top_rows["given_label"].astype(str) == top_rows["suggested_label"].astype(str)
    out = pd.DataFrame({
        "sample_id": top_rows["sample_id"].astype(str),
        "action": np.where(same, "keep", "relabel"),
        "new_label": np.where(same, "", top_rows["suggested_label"].astype(str)),
    })
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False)
    return out
