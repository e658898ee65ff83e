"""Build the prepared data set (see :mod:`sampleval.data.prepared`) from a source.

Sources: ``digits`` (embedded, real, 10 classes), ``nih14`` and ``chexpert`` (multi-label,
user-provided images under ``data.root``), and your own data: ``table`` (a CSV/parquet of
features, :mod:`sampleval.data.table`), ``imagefolder`` and ``manifest`` (images,
:mod:`sampleval.data.folders`). Label noise is injected into the requested splits only
(multi-class sources), recording the clean label and a ``flipped`` flag.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sampleval.config import ParamsError, resolve_noise
from sampleval.data import sources
from sampleval.data.digits import load_digits_source
from sampleval.data.noise import apply_noise
from sampleval.data.prepared import save_prepared
from sampleval.data.settings import DataParams, NoiseParams
from sampleval.data.splits import stratified_limit, stratified_split

DECODE_CACHE = "data/cache"


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of uint8 (N, C, H, W) images to (N, C, size, size)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    t = torch.from_numpy(images.astype(np.float32))
    out = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8).numpy()


def _digits(data: DataParams, seed: int) -> tuple[np.ndarray, pd.DataFrame, list[str], str, list[str]]:
    images, table, classes = load_digits_source()
    if data.limit is not None and data.limit < len(table):
        keep = stratified_limit(table["label"].to_numpy(), data.limit, seed)
        images, table = images[keep], table.iloc[keep].reset_index(drop=True)
    table["split"] = stratified_split(table["label"].to_numpy(), data.val_fraction, data.test_fraction, seed)
    return resize_images(images, data.image_size), table, classes, "multiclass", []


def _xray(data: DataParams, seed: int) -> tuple[np.ndarray, pd.DataFrame, list[str], str, list[str]]:
    from sampleval.data import xray

    if data.root is None:
        raise ParamsError(f"params: 'data.root' is null but data.source = {data.source}; set it to the folder holding the data set")
    common = dict(
        image_size=data.image_size,
        val_fraction=data.val_fraction,
        test_fraction=data.test_fraction,
        seed=seed,
        limit=data.limit,
        on_bad_image=data.on_bad_image,
        cache_dir=Path(DECODE_CACHE) / data.source,
    )
    if data.source == "nih14":
        src = xray.load_nih14(data.root, **common)
    else:
        src = xray.load_chexpert(data.root, uncertainty=data.uncertainty, frontal_only=data.frontal_only, **common)
    table = src.table.copy()
    if "label_mask" in table:  # uncertainty: ignore -> -1 marks labels the loss and metrics skip
        table["label"] = [np.where(np.asarray(m) > 0, np.asarray(v), -1).astype(np.int8) for v, m in zip(table["label"], table["label_mask"])]
    else:
        table["label"] = [np.asarray(v, dtype=np.int8) for v in table["label"]]
    return np.asarray(src.images), table, list(src.classes), "multilabel", list(src.skipped)


def _table(data: DataParams, seed: int) -> tuple[np.ndarray, pd.DataFrame, list[str], str, list[str], dict]:
    """Features as float32 ``(N, F, 1, 1)``; one-hot + standardisation fitted on the training split only."""
    from sampleval.data.table import TableEncoder, load_table

    frame, labels, classes, numeric, categorical = load_table(
        data.file, data.label_column, data.feature_columns, data.categorical_columns, data.id_column
    )
    index = {c: i for i, c in enumerate(classes)}
    y = np.asarray([index[v] for v in labels], dtype=np.int64)
    ids = frame[data.id_column].astype(str).to_numpy() if data.id_column else np.asarray([f"row-{i:06d}" for i in range(len(frame))])
    keep = stratified_limit(y, data.limit, seed)
    frame, y, ids = frame.iloc[keep].reset_index(drop=True), y[keep], ids[keep]
    table = pd.DataFrame({"sample_id": ids, "label": y})
    table["split"] = stratified_split(y, data.val_fraction, data.test_fraction, seed)
    encoder = TableEncoder(numeric, categorical).fit(frame[table["split"].to_numpy() == "train"])
    features = encoder.transform(frame)[:, :, None, None]
    extra = {"features": encoder.feature_names, "encoding": encoder.describe(), "file": data.file, "label_column": data.label_column}
    return features, table, classes, "multiclass", [], extra


def _folders(data: DataParams, seed: int) -> tuple[np.ndarray, pd.DataFrame, list[str], str, list[str], dict]:
    from sampleval.data import folders

    return folders.load(data, seed, Path(DECODE_CACHE) / data.source)


def prepare_dataset(data: DataParams, noise: NoiseParams, seed: int, out_dir: str | Path, corrections: str | Path | None = None) -> dict:
    """The source's loader comes from its entry in :mod:`sampleval.data.sources`.
    ``corrections``: a reviewer's corrections CSV (:mod:`sampleval.data.corrections`), applied to
    the training split after the noise injection and recorded in the manifest; None: none."""
    images, table, classes, task, skipped, *more = sources.get(data.source).load()(data, seed)
    source_extra = more[0] if more else {}
    noise = resolve_noise(noise, data.source)
    apply_noise(table, noise, classes, task, seed)
    table["row"] = np.arange(len(table))
    columns = ["sample_id", "row", "split", "label", "clean_label", "flipped"] + [c for c in ("patient_id", "label_mask") if c in table]
    from sampleval.data.corrections import APPLIED, apply_corrections, read_corrections
    from sampleval.io import write_parquet

    corr, digest = read_corrections(corrections)
    table, applied, record = apply_corrections(table[columns], corr, classes, task, digest, str(corrections) if corrections else None)
    extra = {"source": data.source, "noise": dataclasses.asdict(noise), "skipped": skipped, **source_extra, "corrections": record}
    manifest = save_prepared(out_dir, images, table, task, classes, extra)
    write_parquet(Path(out_dir) / APPLIED, applied)
    return manifest
