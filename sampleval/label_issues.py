"""Reading the suspects table (``data/label_issues.parquet``, written by :mod:`sampleval.suspects`;
schema there): what the report and the ``sampleval`` command show of it. Pandas only, so
the report stage does not import the rankings."""
from __future__ import annotations

import pandas as pd


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
    return {"ranking": str(table["ranking"].iloc[0]) if len(table) else None, "top_k": int(top_k), "top": top, "found": found_in_top(table)}
