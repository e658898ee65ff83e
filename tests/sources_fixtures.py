"""Tiny generated data for the own-data sources (imagefolder, manifest, table): used by
tests/test_sources.py, the README docs test and the e2e runs.

Images: class k is a bright square in one of the corners (plus noise), learnable by a small
CNN in a few epochs; RGB images also tint by class."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

CLASSES = ("cat", "dog", "fox")


def _pixels(k: int, rng: np.random.Generator, size: int, rgb: bool) -> np.ndarray:
    img = rng.integers(0, 60, size=(size, size)).astype(np.float64)
    h = size // 2
    r, c = divmod(k % 4, 2)
    img[r * h : (r + 1) * h, c * h : (c + 1) * h] += 180
    img = np.clip(img, 0, 255).astype(np.uint8)
    if not rgb:
        return img
    out = np.stack([img, img, img], axis=-1)
    out[..., k % 3] = np.clip(out[..., k % 3].astype(int) + 40, 0, 255).astype(np.uint8)
    return out


def write_image(path: Path, k: int, rng: np.random.Generator, size: int = 16, rgb: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_pixels(k, rng, size, rgb), mode="RGB" if rgb else "L").save(path)


def make_imagefolder(root: Path, n_per_class: int = 20, classes=CLASSES, size: int = 16, rgb: bool = False, fixed: bool = False, seed: int = 0) -> Path:
    """``root/<class>/<i>.png`` (``fixed``: ``root/train|val|test/<class>/``)."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        for i in range(n_per_class):
            split = ("train", "train", "train", "val", "test")[i % 5] if fixed else None
            folder = root / split / name if split else root / name
            write_image(folder / f"{name}-{i:03d}.png", k, rng, size, rgb)
    return root


def make_manifest(root: Path, n: int = 60, multilabel: bool = False, groups: bool = False, size: int = 16, seed: int = 0,
                  style: str = "separator") -> Path:
    """``root/images/*.png`` and ``root/manifest.csv`` (columns path, label[, patient]).

    Multi-label (``style``): ``separator`` = ``label`` lists findings joined by ``|``
    (empty: none); ``columns`` = one 0/1 column per finding."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = i % len(CLASSES)
        path = f"images/{i:04d}.png"
        write_image(root / path, k, rng, size)
        row = {"path": path}
        if multilabel:
            findings = [CLASSES[k]] + ([CLASSES[(k + 1) % 3]] if i % 4 == 0 else [])
            if style == "columns":
                row.update({c: int(c in findings) for c in CLASSES})
            else:
                row["label"] = "|".join(findings) if i % 7 else ""
        else:
            row["label"] = CLASSES[k]
        if groups:
            row["patient"] = f"p{i // 3:03d}"
        rows.append(row)
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def make_table(path: Path, n: int = 120, seed: int = 0) -> Path:
    """A CSV with numeric features, one categorical feature and a 3-class label that depends on both."""
    rng = np.random.default_rng(seed)
    k = np.arange(n) % 3
    frame = pd.DataFrame({
        "age": rng.normal(40 + 10 * k, 5).round(1),
        "income": rng.normal(3 - k, 1.0).round(3),
        "city": np.where(rng.random(n) < 0.7, np.array(["north", "south", "east"])[k], "west"),
        "label": np.array(["low", "mid", "high"])[k],
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path
