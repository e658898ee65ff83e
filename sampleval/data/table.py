"""The ``table`` source: a CSV or parquet of numeric and categorical features plus a label.

Representation in ``data/prepared/``: the encoded features are stored in ``images.npy`` as
float32 ``(N, F, 1, 1)``: one "channel" per feature on a 1x1 "image". Everything downstream
(training batches, the influence estimators, the subset experiments, the fidelity stage) cuts
rows out of that array exactly as for images; :func:`sampleval.training.loop.to_float` scales only
uint8 pixels, so float features reach the model as stored. The models ``logistic`` and
``mlp`` flatten their input first (:mod:`sampleval.training.models`).

Encoding, fitted on the training split only (after the split, so no statistic of the
validation or test rows leaks into the features): categorical columns are one-hot encoded
with the categories seen in training (an unseen category in val/test encodes as all zeros),
numeric columns are standardised with the training mean and standard deviation (a constant
column gets standard deviation 1). The feature names and the fitted statistics go to the
manifest.

``data.file`` may also name an embedded real table: ``sklearn:wine`` (178 wines, 13 numeric
features, 3 classes) or ``sklearn:breast_cancer`` (569 tumours, 30 numeric features, 2
classes), both from scikit-learn with the label in the column ``label``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from sampleval.data.prepared import DataError

EMBEDDED = ("sklearn:wine", "sklearn:breast_cancer")


def embedded_table(name: str) -> pd.DataFrame:
    from sklearn import datasets

    loader = {"sklearn:wine": datasets.load_wine, "sklearn:breast_cancer": datasets.load_breast_cancer}[name]
    bunch = loader(as_frame=True)
    frame = bunch.data.copy()
    names = [str(n) for n in bunch.target_names]
    frame["label"] = [names[int(i)] for i in bunch.target]
    return frame


def read_table(file: str) -> pd.DataFrame:
    """The table of ``data.file``: an embedded name, a ``.csv`` or a ``.parquet`` file."""
    if file in EMBEDDED:
        return embedded_table(file)
    if file.startswith("sklearn:"):
        raise DataError(f"data.file = {file}: unknown embedded table; use one of {', '.join(EMBEDDED)} or a CSV/parquet path")
    path = Path(file)
    if not path.is_file():
        raise DataError(f"{path}: table file not found; set data.file to a CSV or parquet file (or {EMBEDDED[0]})")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as exc:
        raise DataError(f"{path}: cannot be read as {'parquet' if path.suffix.lower() in ('.parquet', '.pq') else 'CSV'} ({type(exc).__name__}); "
                        "give a comma-separated CSV with a header row or a parquet file") from exc


def _numeric_share(values: pd.Series) -> float:
    present = values.dropna()
    if present.empty:
        return 0.0
    return float(pd.to_numeric(present, errors="coerce").notna().mean())


def feature_kinds(frame: pd.DataFrame, file: str, features: Sequence[str], categorical: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """``(numeric, categorical)`` feature columns. ``categorical`` null: the non-numeric
    columns (text, bool, category), unless a text column is mostly numbers (then the stray
    values are typos and fail, naming one)."""
    numeric, cats = [], []
    for col in features:
        values = frame[col]
        explicit = categorical is not None and col in categorical
        if explicit or (categorical is None and not pd.api.types.is_numeric_dtype(values) and _numeric_share(values) < 0.5):
            cats.append(col)
            continue
        if pd.api.types.is_bool_dtype(values):
            numeric.append(col)
            continue
        parsed = pd.to_numeric(values, errors="coerce")
        bad = values.notna() & parsed.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{file}: feature column '{col}' is numeric but row {row} holds {values.iloc[row]!r}; fix the value "
                f"or list '{col}' in data.categorical_columns"
            )
        if parsed.isna().any():
            row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
            raise DataError(f"{file}: feature column '{col}' has a missing value at row {row}; fill or drop the missing values first")
        numeric.append(col)
    return numeric, cats


class TableEncoder:
    """One-hot + standardisation, fitted on the training rows only."""

    def __init__(self, numeric: list[str], categorical: list[str]):
        self.numeric, self.categorical = numeric, categorical
        self.mean: dict[str, float] = {}
        self.std: dict[str, float] = {}
        self.categories: dict[str, list[str]] = {}

    def fit(self, frame: pd.DataFrame) -> "TableEncoder":
        for col in self.numeric:
            v = pd.to_numeric(frame[col]).astype(np.float64)
            sd = float(v.std(ddof=0))
            self.mean[col], self.std[col] = float(v.mean()), sd if sd > 0 else 1.0
        for col in self.categorical:
            self.categories[col] = sorted(frame[col].fillna("<missing>").astype(str).unique().tolist())
        return self

    @property
    def feature_names(self) -> list[str]:
        return list(self.numeric) + [f"{c}={v}" for c in self.categorical for v in self.categories[c]]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        parts = [((pd.to_numeric(frame[c]).astype(np.float64) - self.mean[c]) / self.std[c]).to_numpy()[:, None] for c in self.numeric]
        for c in self.categorical:
            values = frame[c].fillna("<missing>").astype(str).to_numpy()
            parts.append((values[:, None] == np.asarray(self.categories[c], dtype=object)[None, :]).astype(np.float64))
        x = np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0))
        return x.astype(np.float32)

    def describe(self) -> dict:
        return {"numeric": {c: {"mean": self.mean[c], "std": self.std[c]} for c in self.numeric}, "categorical": self.categories}


def load_table(
    file: str,
    label_column: str,
    feature_columns: Sequence[str] | None,
    categorical_columns: Sequence[str] | None,
    id_column: str | None,
) -> tuple[pd.DataFrame, list[str], list[str], list[str], list[str]]:
    """Read and check the table: ``(frame, labels as str, classes, numeric, categorical)``.

    Every problem fails in one line naming the file and the fix."""
    frame = read_table(file)
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    wanted = [label_column] + list(feature_columns or []) + list(categorical_columns or []) + ([id_column] if id_column else [])
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DataError(f"{file}: column(s) {', '.join(repr(c) for c in missing)} not found (columns: {', '.join(columns[:20])}); "
                        "fix data.label_column / data.feature_columns / data.categorical_columns / data.id_column")
    if frame[label_column].isna().any():
        row = int(np.flatnonzero(frame[label_column].isna().to_numpy())[0])
        raise DataError(f"{file}: label column '{label_column}' is empty at row {row}; drop unlabelled rows or fill them")
    if id_column and frame[id_column].astype(str).duplicated().any():
        dup = frame[id_column][frame[id_column].astype(str).duplicated()].iloc[0]
        raise DataError(f"{file}: id column '{id_column}' repeats {dup!r}; ids must be unique (or set data.id_column: null)")
    features = list(feature_columns) if feature_columns else [c for c in columns if c not in (label_column, id_column)]
    if not features:
        raise DataError(f"{file}: no feature columns besides the label '{label_column}'; add features or set data.feature_columns")
    numeric, cats = feature_kinds(frame, file, features, categorical_columns)
    labels = frame[label_column].astype(str).tolist() if not pd.api.types.is_float_dtype(frame[label_column]) else [
        str(int(v)) if float(v).is_integer() else str(v) for v in frame[label_column]]
    classes = sorted(set(labels), key=_class_key)
    if len(classes) < 2:
        raise DataError(f"{file}: label column '{label_column}' has a single class ({classes[0]!r}); a classifier needs at least two")
    return frame, labels, classes, numeric, cats


def _class_key(name: str):
    """Numbers in numeric order (2 before 10), then text."""
    try:
        return (0, float(name), "")
    except ValueError:
        return (1, 0.0, name)
