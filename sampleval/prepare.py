"""Build the prepared data set (see :mod:`sampleval.data.prepared`) from a source.

Sources: ``digits`` (embedded, real, 10 classes), ``nih14`` and ``chexpert`` (multi-label,
user-provided images under ``data.root``), and your own data: ``table`` (a CSV/parquet of
features, :mod:`sampleval.data.table`), ``imagefolder`` and ``manifest`` (images,
:mod:`sampleval.data.folders`). Label noise is injected into the requested splits only
(multi-class sources), recording the clean label and a ``flipped`` flag.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import ParamsError, resolve_noise
from .data.digits import load_digits_source
from .data.noise import inject_noise
from .data.prepared import save_prepared
from .data.splits import stratified_limit, stratified_split

DECODE_CACHE = "data/cache"


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of uint8 (N, C, H, W) images to (N, C, size, size)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    t = torch.from_numpy(images.astype(np.float32))
    out = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8).numpy()


def _digits(data: dict, seed: int) -> tuple[np.ndarray, pd.DataFrame, list[str], str, list[str]]:
    images, table, classes = load_digits_source()
    if data["limit"] is not None and data["limit"] < len(table):
        keep = stratified_limit(table["label"].to_numpy(), data["limit"], seed)
        images, table = images[keep], table.iloc[keep].reset_index(drop=True)
    table["split"] = stratified_split(table["label"].to_numpy(), data["val_fraction"], data["test_fraction"], seed)
    return resize_images(images, data["image_size"]), table, classes, "multiclass", []


def _xray(data: dict, seed: int) -> tuple[np.ndarray, pd.DataFrame, list[str], str, list[str]]:
    from .data import xray

    if data["root"] is None:
        raise ParamsError(f"params: 'data.root' is null but data.source = {data['source']}; set it to the folder holding the data set")
    common = dict(
        image_size=data["image_size"],
        val_fraction=data["val_fraction"],
        test_fraction=data["test_fraction"],
        seed=seed,
        limit=data["limit"],
        on_bad_image=data["on_bad_image"],
        cache_dir=Path(DECODE_CACHE) / data["source"],
    )
    if data["source"] == "nih14":
        src = xray.load_nih14(data["root"], **common)
    else:
        src = xray.load_chexpert(data["root"], uncertainty=data["uncertainty"], frontal_only=data["frontal_only"], **common)
    table = src.table.copy()
    if "label_mask" in table:  # uncertainty: ignore -> -1 marks labels the loss and metrics skip
        table["label"] = [np.where(np.asarray(m) > 0, np.asarray(v), -1).astype(np.int8) for v, m in zip(table["label"], table["label_mask"])]
    else:
        table["label"] = [np.asarray(v, dtype=np.int8) for v in table["label"]]
    return np.asarray(src.images), table, list(src.classes), "multilabel", list(src.skipped)


def _table(data: dict, seed: int) -> tuple[np.ndarray, pd.DataFrame, list[str], str, list[str], dict]:
    """Features as float32 ``(N, F, 1, 1)``; one-hot + standardisation fitted on the training split only."""
    from .data.table import TableEncoder, load_table

    frame, labels, classes, numeric, categorical = load_table(
        data["file"], data["label_column"], data["feature_columns"], data["categorical_columns"], data["id_column"]
    )
    index = {c: i for i, c in enumerate(classes)}
    y = np.asarray([index[v] for v in labels], dtype=np.int64)
    ids = frame[data["id_column"]].astype(str).to_numpy() if data["id_column"] else np.asarray([f"row-{i:06d}" for i in range(len(frame))])
    keep = stratified_limit(y, data["limit"], seed)
    frame, y, ids = frame.iloc[keep].reset_index(drop=True), y[keep], ids[keep]
    table = pd.DataFrame({"sample_id": ids, "label": y})
    table["split"] = stratified_split(y, data["val_fraction"], data["test_fraction"], seed)
    encoder = TableEncoder(numeric, categorical).fit(frame[table["split"].to_numpy() == "train"])
    features = encoder.transform(frame)[:, :, None, None]
    extra = {"features": encoder.feature_names, "encoding": encoder.describe(), "file": data["file"], "label_column": data["label_column"]}
    return features, table, classes, "multiclass", [], extra


def _folders(data: dict, seed: int) -> tuple[np.ndarray, pd.DataFrame, list[str], str, list[str], dict]:
    from .data import folders

    return folders.load(data, seed, Path(DECODE_CACHE) / data["source"])


LOADERS = {"digits": _digits, "nih14": _xray, "chexpert": _xray, "table": _table, "imagefolder": _folders, "manifest": _folders}


def prepare_dataset(data: dict, noise: dict, seed: int, out_dir: str | Path, corrections: str | Path | None = None) -> dict:
    """``corrections``: a reviewer's corrections CSV (:mod:`sampleval.corrections`), applied to
    the training split after the noise injection and recorded in the manifest; None: none."""
    images, table, classes, task, skipped, *more = LOADERS[data["source"]](data, seed)
    source_extra = more[0] if more else {}
    clean = table["label"].copy()
    noise = resolve_noise(noise, data["source"])
    if noise["kind"] != "none" and noise["rate"] > 0:
        if task != "multiclass":
            raise ParamsError("params: 'noise.kind' must be none for multi-label sources (nih14, chexpert, a multi-label manifest)")
        out_of_range = [p for p in noise["pairs"] if max(p) >= len(classes)] if noise["kind"] == "pairwise" else []
        if out_of_range:
            raise ParamsError(f"params: 'noise.pairs' {out_of_range} name a class index outside 0..{len(classes) - 1} "
                              f"(this data's classes: {', '.join(f'{i}={c}' for i, c in enumerate(classes[:12]))}); fix the pairs or set noise.kind")
        eligible = table["split"].isin(noise["splits"]).to_numpy()
        noisy, flipped = inject_noise(
            table["label"].to_numpy(), eligible, noise["kind"], noise["rate"], len(classes), noise["pairs"], np.random.default_rng(seed)
        )
        table["label"] = noisy
    else:
        flipped = np.zeros(len(table), dtype=bool)
    table["clean_label"] = clean
    table["flipped"] = flipped
    table["row"] = np.arange(len(table))
    columns = ["sample_id", "row", "split", "label", "clean_label", "flipped"] + [c for c in ("patient_id", "label_mask") if c in table]
    from .corrections import APPLIED, apply_corrections, read_corrections
    from .io import write_parquet

    corr, digest = read_corrections(corrections)
    table, applied, record = apply_corrections(table[columns], corr, classes, task, digest, str(corrections) if corrections else None)
    extra = {"source": data["source"], "noise": noise, "skipped": skipped, **source_extra, "corrections": record}
    manifest = save_prepared(out_dir, images, table, task, classes, extra)
    write_parquet(Path(out_dir) / APPLIED, applied)
    return manifest
