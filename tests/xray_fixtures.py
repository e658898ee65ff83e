"""Fake NIH ChestXray14 / CheXpert roots for tests, built from real metadata rows.

``fixtures/nih14_sample.csv``: 296 real rows of ``Data_Entry_2017_v2020.csv`` (the copy
shipped with torchxrayvision), unmodified lines: 103 whole patients, the first 102
patients with at most 15 images (patients 1..108) plus patient 212 (for an Edema row).
``fixtures/chexpert_sample.csv``: the first 203 rows of CheXpert-v1.0-small
``train.csv`` (63 whole patients, frontal and lateral views, -1 and blank labels).

Images are small generated pictures (deterministic per file name, varying width, some
RGBA) so that decoding, resizing and grayscale conversion are exercised.
"""
from __future__ import annotations

import io
import zlib
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"
NIH_CSV = FIXTURES / "nih14_sample.csv"
CHEXPERT_CSV = FIXTURES / "chexpert_sample.csv"
CHEXPERT_DIR = "CheXpert-v1.0-small"
GARBAGE = b"this is not an image\x00\xff" * 8


def nih_frame() -> pd.DataFrame:
    return pd.read_csv(NIH_CSV)


def chexpert_frame() -> pd.DataFrame:
    return pd.read_csv(CHEXPERT_CSV)


def image_pixels(name: str) -> np.ndarray:
    """Deterministic uint8 picture for a file name: 32 rows, 32/40/48 columns."""
    seed = zlib.crc32(name.encode())
    rng = np.random.default_rng(seed)
    width = 32 + 8 * (seed % 3)
    ramp = np.linspace(0, 200, width)[None, :] + np.linspace(0, 40, 32)[:, None]
    return np.clip(ramp + rng.integers(0, 50, (32, width)), 0, 255).astype(np.uint8)


def write_image(path: Path, name: str) -> None:
    """Write the picture of ``name`` to ``path`` (PNG or JPEG by suffix; every 5th PNG as RGBA)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(image_pixels(name), mode="L")
    if path.suffix.lower() == ".png" and zlib.crc32(name.encode()) % 5 == 0:
        img = img.convert("RGBA")
    img.save(path)


def truncated_png(name: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image_pixels(name), mode="L").save(buf, format="PNG")
    data = buf.getvalue()
    return data[: len(data) // 2]


def _write_images(files: dict[str, Path], corrupt: Iterable[str], missing: Iterable[str], truncated: Iterable[str]) -> None:
    corrupt, missing, truncated = set(corrupt), set(missing), set(truncated)
    for key, path in files.items():
        if key in missing:
            continue
        if key in corrupt:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(GARBAGE)
        elif key in truncated:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(truncated_png(key))
        else:
            write_image(path, key)


def official_test_patients(frame: pd.DataFrame) -> list[int]:
    """The patients the fake official test list holds: every 4th patient."""
    return sorted(frame["Patient ID"].unique())[::4]


def make_nih_root(
    base: Path,
    csv_name: str = "Data_Entry_2017_v2020.csv",
    official_lists: bool = False,
    corrupt: Iterable[str] = (),
    missing: Iterable[str] = (),
    truncated: Iterable[str] = (),
    frame: pd.DataFrame | None = None,
) -> Path:
    """Lay out ``base/<csv_name>`` and ``base/images/*.png``; return ``base``.

    ``official_lists`` writes ``test_list.txt`` (patients of :func:`official_test_patients`) and
    ``train_val_list.txt`` (the rest). ``corrupt`` / ``truncated`` / ``missing`` name image
    files to write as garbage bytes / half a PNG / not at all. ``frame`` replaces the
    fixture CSV rows (e.g. to drop a column).
    """
    base.mkdir(parents=True, exist_ok=True)
    if frame is None:
        data = NIH_CSV.read_bytes()
        if csv_name.endswith(".gz"):
            import gzip

            data = gzip.compress(data)
        (base / csv_name).write_bytes(data)
        frame = nih_frame()
    else:
        frame.to_csv(base / csv_name, index=False)
    if "Image Index" in frame.columns:
        names = frame["Image Index"].tolist()
        _write_images({n: base / "images" / n for n in names}, corrupt, missing, truncated)
    if official_lists:
        in_test = frame["Patient ID"].isin(official_test_patients(frame))
        (base / "test_list.txt").write_text("\n".join(frame.loc[in_test, "Image Index"]) + "\n")
        (base / "train_val_list.txt").write_text("\n".join(frame.loc[~in_test, "Image Index"]) + "\n")
    return base


def make_chexpert_root(
    base: Path,
    corrupt: Iterable[str] = (),
    missing: Iterable[str] = (),
    frame: pd.DataFrame | None = None,
) -> Path:
    """Lay out ``base/CheXpert-v1.0-small/{train.csv,train/patient*/study*/view*.jpg}``;
    return the ``CheXpert-v1.0-small`` folder. ``corrupt`` / ``missing`` hold CSV ``Path``
    values."""
    dataset = base / CHEXPERT_DIR
    dataset.mkdir(parents=True, exist_ok=True)
    if frame is None:
        (dataset / "train.csv").write_bytes(CHEXPERT_CSV.read_bytes())
        frame = chexpert_frame()
    else:
        frame.to_csv(dataset / "train.csv", index=False)
    files = {p: base / p for p in frame["Path"]}
    _write_images(files, corrupt, missing, ())
    return dataset
