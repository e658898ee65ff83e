"""A reviewer's corrections (``data/corrections.csv``) and what they are worth.

The file has the columns ``sample_id, action, new_label``, one row per reviewed training
sample; ``action`` is ``relabel`` (to ``new_label``, a class name), ``remove`` (drop the
sample from the training split) or ``keep`` (reviewed, left as it is; ``new_label`` empty).
A header-only file means no corrections. ``prepare`` applies it to the training split after
the noise injection (:func:`apply_corrections`), as a reviewer fixes the labels they were
given; every row is checked first and a bad file fails in one line, nothing applied.
Relabelling is defined for multi-class data only (multi-label data: remove or keep).

After a relabel, ``flipped`` is whether the label still differs from ``clean_label``
(a flip fixed by the reviewer is no longer a wrong label). ``prepare`` keeps the affected
rows as they were before the corrections in ``data/prepared/corrections.parquet`` (plus
``action`` and ``new_label``), from which :func:`uncorrected_table` rebuilds the data
before the corrections.

:func:`sampleval.experiments.correction_runs.compare_corrections` (the ``corrections`` stage) retrains with every seed on three
training sets: before the corrections, after them, and a random control of the same size
(as many random training samples relabelled to the before-model's prediction of the same
seed, and as many removed), and compares corrected against random and against before
with the exact paired test (:func:`sampleval.experiments.stats.paired_test`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

ACTIONS = ("relabel", "remove", "keep")
COLUMNS = ["sample_id", "action", "new_label"]
APPLIED = "corrections.parquet"  # in the prepared folder


class CorrectionsError(ValueError):
    """A bad corrections file; the message names the rows and the fix."""


def _rows(lines: list[int]) -> str:
    shown = ", ".join(str(i) for i in lines[:5])
    return f"line{'s' if len(lines) > 1 else ''} {shown}{' ...' if len(lines) > 5 else ''}"


def read_corrections(path: str | Path | None) -> tuple[pd.DataFrame, str | None]:
    """The file as text columns (``line``: its line number) and its sha256 (None: no file)."""
    if path is None or not Path(path).exists():
        return pd.DataFrame(columns=COLUMNS + ["line"]), None
    raw = Path(path).read_bytes()
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as exc:  # noqa: BLE001 - pandas raises several kinds
        raise CorrectionsError(f"corrections: {path} is not a readable CSV ({exc.__class__.__name__}); "
                               f"write a header line '{','.join(COLUMNS)}' and one row per sample") from exc
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in COLUMNS if c not in df.columns]
    extra = [c for c in df.columns if c not in COLUMNS]
    if missing or extra:
        raise CorrectionsError(f"corrections: {path} has columns {list(df.columns)}; it needs exactly {', '.join(COLUMNS)}")
    df = df[COLUMNS].apply(lambda s: s.str.strip())
    df["line"] = np.arange(2, len(df) + 2)
    return df, hashlib.sha256(raw).hexdigest()


def check_corrections(corr: pd.DataFrame, table: pd.DataFrame, classes: list[str], task: str, path: str = "data/corrections.csv") -> None:
    """Every rule at once, before anything is applied: one line naming the first problem's rows and the fix."""
    def fail(bad: pd.Series, what: str, fix: str) -> None:
        if bad.any():
            lines = corr.loc[bad, "line"].tolist()
            ids = corr.loc[bad, "sample_id"].tolist()[:3]
            raise CorrectionsError(f"corrections: {path} {_rows(lines)} ({', '.join(map(repr, ids))}): {what}; {fix}")

    fail(~corr["action"].isin(ACTIONS), "unknown action", f"use one of {', '.join(ACTIONS)}")
    fail(corr["sample_id"] == "", "empty sample_id", "give the id of a training sample (data/label_issues.csv)")
    fail(corr["sample_id"].duplicated(keep=False), "duplicate rows for one sample", "keep one row per sample_id")
    split_of = dict(zip(table["sample_id"].astype(str), table["split"]))
    fail(~corr["sample_id"].isin(split_of), "unknown sample ids", "use ids from data/label_issues.csv (training samples)")
    fail(corr["sample_id"].map(split_of) != "train", "ids outside the training split",
         "only training samples are corrected (val and test stay as given)")
    relabel = corr["action"] == "relabel"
    if task != "multiclass":
        fail(relabel, "relabel on multi-label data", "use remove or keep (relabelling is defined for multi-class data)")
    fail(relabel & (corr["new_label"] == ""), "relabel without new_label", "give the new class name")
    fail(relabel & (corr["new_label"] != "") & ~corr["new_label"].isin(classes), "unknown labels",
         f"new_label must be a class name ({', '.join(classes[:12])}{' ...' if len(classes) > 12 else ''})")
    fail(~relabel & (corr["new_label"] != ""), "new_label given for remove/keep", "leave new_label empty unless the action is relabel")


def apply_corrections(table: pd.DataFrame, corr: pd.DataFrame, classes: list[str], task: str, digest: str | None,
                      path: str = "data/corrections.csv") -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """``(corrected table, affected rows as they were + action/new_label, manifest record)``."""
    check_corrections(corr, table, classes, task, path)
    index = {c: i for i, c in enumerate(classes)}
    action = dict(zip(corr["sample_id"], corr["action"]))
    new = dict(zip(corr["sample_id"], corr["new_label"]))
    ids = table["sample_id"].astype(str)
    affected = ids.isin([i for i, a in action.items() if a != "keep"])
    before = table[affected].copy()
    before["action"] = [action[i] for i in before["sample_id"].astype(str)]
    before["new_label"] = [new[i] for i in before["sample_id"].astype(str)]
    out = table.copy()
    relabel = ids.map(lambda i: action.get(i) == "relabel").to_numpy(bool)
    if relabel.any():
        out.loc[relabel, "label"] = [index[new[i]] for i in ids[relabel]]
        out["flipped"] = out["flipped"].to_numpy(bool) & ~relabel | (relabel & (out["label"].to_numpy() != out["clean_label"].to_numpy()))
    removed = ids.map(lambda i: action.get(i) == "remove").to_numpy(bool)
    out = out[~removed].reset_index(drop=True)
    counts = {a: int((corr["action"] == a).sum()) for a in ACTIONS}
    changed = int(sum(1 for i in ids[relabel] if table.loc[ids == i, "label"].iloc[0] != index[new[i]]))
    record = {
        "file": path,
        "sha256": digest,
        "n_rows": int(len(corr)),
        "counts": counts,
        "n_labels_changed": changed,
        "n_flipped_relabelled_to_clean": int((before["flipped"].to_numpy(bool) & (before["action"] == "relabel").to_numpy()
                                              & (before["new_label"].map(lambda c: index.get(c, -1)).to_numpy() == before["clean_label"].to_numpy())).sum())
        if len(before) and task == "multiclass" else 0,
        "n_flipped_removed": int((before["flipped"].to_numpy(bool) & (before["action"] == "remove").to_numpy()).sum()) if len(before) else 0,
    }
    return out, before.reset_index(drop=True), record


def uncorrected_table(table: pd.DataFrame, applied: pd.DataFrame) -> pd.DataFrame:
    """The prepared table as it was before the corrections (rows in ``row`` order)."""
    if applied is None or not len(applied):
        return table
    rest = table[~table["sample_id"].isin(applied["sample_id"])]
    restored = applied.drop(columns=["action", "new_label"])[table.columns]
    return pd.concat([rest, restored]).sort_values("row", kind="stable").reset_index(drop=True)
