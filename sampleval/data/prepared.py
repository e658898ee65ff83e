"""The prepared-data contract shared by every stage.

``data/prepared/`` holds:

- ``images.npy``: uint8 array ``(N, C, H, W)``, memory-mappable; for the ``table`` source
  float32 ``(N, F, 1, 1)``: the encoded features, one channel each, used as stored
  (:func:`sampleval.training.loop.to_float` scales only uint8);
- ``samples.parquet``: one row per image: ``sample_id`` (str, stable), ``row`` (index
  into images.npy), ``split`` (train/val/test), ``label`` (as trained on), ``clean_label``,
  ``flipped`` (bool), and ``patient_id`` where the source has patients. Multi-class
  labels are int64; multi-label labels are fixed-size int8 lists (one entry per finding);
- ``manifest.json``: task, class names, counts per class and split, flips, content hash.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sampleval.io import hash_array, write_json, write_npy, write_parquet

SPLITS = ("train", "val", "test")


class DataError(RuntimeError):
    """Bad or missing input data; the message names the problem and the fix."""


@dataclass
class Split:
    x: np.ndarray  # uint8 (n, C, H, W), or float32 (n, F, 1, 1) for tables
    y: np.ndarray  # int64 (n,) or float32 (n, L)
    ids: np.ndarray  # str (n,)
    clean_y: np.ndarray
    flipped: np.ndarray


@dataclass
class Prepared:
    images: np.ndarray
    table: pd.DataFrame
    task: str  # multiclass | multilabel
    classes: list[str]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> Split:
        rows = self.table[self.table["split"] == name]
        x = np.asarray(self.images[rows["row"].to_numpy()])
        return Split(
            x=x,
            y=labels_array(rows["label"], self.task),
            ids=rows["sample_id"].to_numpy().astype(str),
            clean_y=labels_array(rows["clean_label"], self.task),
            flipped=rows["flipped"].to_numpy(dtype=bool),
        )


def labels_array(column: pd.Series, task: str) -> np.ndarray:
    if task == "multilabel":
        return np.stack([np.asarray(v, dtype=np.float32) for v in column]) if len(column) else np.zeros((0, 0), np.float32)
    return column.to_numpy(dtype=np.int64)


def class_counts(table: pd.DataFrame, task: str, classes: list[str], column: str = "label") -> dict:
    out = {}
    for split in SPLITS:
        part = table[table["split"] == split]
        if task == "multilabel":
            y = labels_array(part[column], task) if len(part) else np.zeros((0, len(classes)))
            counts = y.sum(axis=0) if len(part) else np.zeros(len(classes))
            out[split] = {c: int(n) for c, n in zip(classes, counts)}
        else:
            vc = part[column].value_counts()
            out[split] = {c: int(vc.get(i, 0)) for i, c in enumerate(classes)}
    return out


def save_prepared(out_dir: str | Path, images: np.ndarray, table: pd.DataFrame, task: str, classes: list[str], extra: dict | None = None) -> dict:
    out_dir = Path(out_dir)
    if images.ndim != 4 or not (images.dtype == np.uint8 or (images.dtype == np.float32 and images.shape[2:] == (1, 1))):
        raise ValueError("images must be a uint8 array of shape (N, C, H, W) or float32 features of shape (N, F, 1, 1)")
    if table["sample_id"].duplicated().any():
        raise DataError("prepare: duplicate sample_id values; each sample needs a unique id")
    table = table.reset_index(drop=True)
    write_npy(out_dir / "images.npy", images)
    write_parquet(out_dir / "samples.parquet", table)
    content = hash_array(images) + "|" + pd.util.hash_pandas_object(table.astype({"label": str, "clean_label": str}), index=False).astype(str).str.cat()
    import hashlib

    manifest = {
        "task": task,
        "classes": list(classes),
        "image_shape": list(images.shape[1:]),
        "n_samples": {s: int((table["split"] == s).sum()) for s in SPLITS},
        "n_flipped": {s: int(table.loc[table["split"] == s, "flipped"].sum()) for s in SPLITS},
        "class_counts": class_counts(table, task, classes),
        "clean_class_counts": class_counts(table, task, classes, column="clean_label"),
        "content_sha256": hashlib.sha256(content.encode()).hexdigest(),
    }
    if extra:
        manifest.update(extra)
    write_json(out_dir / "manifest.json", manifest, ndigits=None)
    return manifest


def load_prepared(prepared_dir: str | Path) -> Prepared:
    prepared_dir = Path(prepared_dir)
    needed = [prepared_dir / n for n in ("images.npy", "samples.parquet", "manifest.json")]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise DataError(f"prepared data missing ({', '.join(missing)}); run `dvc repro prepare` first")
    manifest = json.loads((prepared_dir / "manifest.json").read_text())
    images = np.load(prepared_dir / "images.npy", mmap_mode="r")
    table = pd.read_parquet(prepared_dir / "samples.parquet")
    return Prepared(images=images, table=table, task=manifest["task"], classes=manifest["classes"])
