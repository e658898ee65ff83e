"""Your own images: the ``imagefolder`` and ``manifest`` sources.

``imagefolder`` (``data.root``): ``root/<class name>/*.png|jpg|...``, torchvision's
``ImageFolder`` convention; class names are sorted into indices 0..K-1 (the mapping is
written to the manifest). With ``root/train``, ``root/test`` (and optionally ``root/val``),
each holding class subfolders, those splits are fixed (a missing ``val`` is carved out of
``train``, stratified); otherwise the split is stratified by class.

``manifest`` (``data.file``): a CSV with a path column (``data.path_column``, relative to
``data.root``, or to the CSV's folder when root is null; a path that leaves the root fails)
and either a class-name column (``data.label_column``: multi-class), several 0/1 columns
(``data.finding_columns``: multi-label) or a ``data.label_separator``-separated list of
findings in ``data.label_column`` (multi-label). With ``data.group_column`` (patient, site,
session) the splits are group-wise and asserted disjoint; otherwise stratified by class
(multi-class) or random (multi-label).

Images are decoded once into the uint8 cache of :mod:`sampleval.data.images` (grayscale or
RGB, ``data.channels``), at ``data.image_size`` or, when null, the images' own common square
size. Every bad input fails in one line naming the file and the fix.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sampleval.data.images import decode_images, infer_size_and_channels
from sampleval.data.prepared import DataError
from sampleval.data.settings import DataParams
from sampleval.data.splits import assert_groups_disjoint, group_split, stratified_limit, stratified_split
from sampleval.data.table import _class_key

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")  # torchvision's, lower case
FIXED_SPLITS = ("train", "val", "test")


def _class_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def scan_imagefolder(root: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """``(files, classes)``: one row per image with ``sample_id`` (path relative to root),
    ``path``, ``class`` and ``fixed_split`` (train/val/test, or None without the layout)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data.root is not a folder; set it to the folder of class subfolders (root/<class>/<image>)")
    layout = [s for s in FIXED_SPLITS if (root / s).is_dir()]
    if layout and ("train" not in layout or "test" not in layout):
        raise DataError(f"{root}: has {'/'.join(layout)} but fixed splits need at least train/ and test/ (val/ optional); "
                        "add the missing folder or put the class folders directly under the root")
    parts = [(root / s, s) for s in layout] if layout else [(root, None)]
    rows, classes_by_part = [], {}
    for folder, split in parts:
        dirs = _class_dirs(folder)
        if not dirs:
            raise DataError(f"{folder}: no class subfolders; put each class's images in {folder}/<class name>/")
        classes_by_part[split] = [d.name for d in dirs]
        for d in dirs:
            files = _images_in(d)
            if not files and split in (None, "train"):
                raise DataError(f"{d}: empty class (no {'/'.join(e[1:] for e in IMAGE_EXTENSIONS[:4])}... images); add images or remove the folder")
            rows += [(f.relative_to(root).as_posix(), f, d.name, split) for f in files]
    classes = classes_by_part.get("train", classes_by_part.get(None))
    for split, names in classes_by_part.items():
        unknown = [n for n in names if n not in classes]
        if unknown:
            raise DataError(f"{root / split}: unknown class {unknown[0]!r} (not in {root / 'train'}); add training images of it or remove the folder")
    files = pd.DataFrame(rows, columns=["sample_id", "path", "class", "fixed_split"])
    return files, classes


def _fixed_splits(files: pd.DataFrame, y: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    split = files["fixed_split"].to_numpy(dtype=object).copy()
    if not (split == "val").any():
        train = np.flatnonzero(split == "train")
        from sklearn.model_selection import train_test_split

        _, val = train_test_split(train, test_size=val_fraction, stratify=y[train], random_state=seed + 1)
        split[val] = "val"
    return split


def _limit(y_or_groups: np.ndarray, limit: int | None, seed: int, stratify: bool) -> np.ndarray:
    from sampleval.data.xray import subsample_patients

    if limit is None or limit >= len(y_or_groups):
        return np.arange(len(y_or_groups))
    if stratify:
        return stratified_limit(y_or_groups, limit, seed)
    return np.flatnonzero(subsample_patients(y_or_groups, limit, seed))


def load_imagefolder(data: DataParams, seed: int) -> tuple[pd.DataFrame, list[str], str]:
    files, classes = scan_imagefolder(data.root)
    index = {c: i for i, c in enumerate(classes)}
    y = files["class"].map(index).to_numpy(dtype=np.int64)
    keep = _limit(y, data.limit, seed, stratify=True)
    files, y = files.iloc[keep].reset_index(drop=True), y[keep]
    if files["fixed_split"].notna().any():
        split = _fixed_splits(files, y, data.val_fraction, seed)
    else:
        split = stratified_split(y, data.val_fraction, data.test_fraction, seed)
    table = pd.DataFrame({"sample_id": files["sample_id"], "path": files["path"], "label": y, "split": split})
    return table, classes, "multiclass"


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def read_manifest(data: DataParams) -> tuple[pd.DataFrame, Path]:
    file = Path(data.file)
    if not file.is_file():
        raise DataError(f"{file}: manifest CSV not found; set data.file to the CSV of image paths and labels")
    try:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise DataError(f"{file}: cannot be read as CSV ({type(exc).__name__}); give a comma-separated file with a header row") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    multilabel_cols = list(data.finding_columns or [])
    needed = [data.path_column] + (multilabel_cols or [data.label_column])
    needed += [c for c in (data.group_column, data.id_column) if c]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{file}: missing column(s) {', '.join(repr(c) for c in missing)} (columns: {', '.join(frame.columns[:12])}); "
                        "rename them or set data.path_column / data.label_column / data.finding_columns / data.group_column / data.id_column")
    root = Path(data.root) if data.root is not None else file.parent
    if not root.is_dir():
        raise DataError(f"{root}: data.root is not a folder; set it to the folder the manifest's paths are relative to (or null: the CSV's folder)")
    return frame, root


def _manifest_labels(frame: pd.DataFrame, data: DataParams) -> tuple[np.ndarray | list, list[str], str]:
    file = data.file
    if data.finding_columns:
        cols = list(data.finding_columns)
        values = frame[cols].apply(lambda c: c.str.strip())
        bad = ~values.isin(["0", "1", "0.0", "1.0"])
        if bad.to_numpy().any():
            r, c = np.argwhere(bad.to_numpy())[0]
            raise DataError(f"{file}: finding column '{cols[c]}' holds {values.iat[r, c]!r} at row {r}; finding columns must be 0 or 1")
        y = values.astype(float).astype(np.int8).to_numpy()
        empty = [c for c, n in zip(cols, y.sum(0)) if n == 0]
        if empty:
            raise DataError(f"{file}: empty class: finding column '{empty[0]}' has no positive row; drop it from data.finding_columns")
        return list(y), cols, "multilabel"
    labels = frame[data.label_column].str.strip()
    if data.label_separator:
        lists = [[v.strip() for v in s.split(data.label_separator) if v.strip()] for s in labels]
        classes = sorted({v for vs in lists for v in vs}, key=_class_key)
        if not classes:
            raise DataError(f"{file}: column '{data.label_column}' lists no finding in any row; check data.label_separator")
        index = {c: i for i, c in enumerate(classes)}
        y = np.zeros((len(lists), len(classes)), dtype=np.int8)
        for i, vs in enumerate(lists):
            y[i, [index[v] for v in vs]] = 1
        return list(y), classes, "multilabel"
    if (labels == "").any():
        row = int(np.flatnonzero((labels == "").to_numpy())[0])
        raise DataError(f"{file}: label column '{data.label_column}' is empty at row {row}; give every row a class name (or drop the row)")
    classes = sorted(set(labels), key=_class_key)
    if len(classes) < 2:
        raise DataError(f"{file}: label column '{data.label_column}' has a single class ({classes[0]!r}); a classifier needs at least two")
    index = {c: i for i, c in enumerate(classes)}
    return labels.map(index).to_numpy(dtype=np.int64), classes, "multiclass"


def load_manifest(data: DataParams, seed: int) -> tuple[pd.DataFrame, list[str], str]:
    frame, root = read_manifest(data)
    file = data.file
    rel = frame[data.path_column].str.strip()
    paths = [root / p for p in rel]
    outside = [i for i, p in enumerate(paths) if not _inside(p, root)]
    if outside:
        raise DataError(f"{file}: row {outside[0]} path {rel.iloc[outside[0]]!r} is outside data.root ({root}); "
                        "move the image under the root or set data.root to a folder that holds every image")
    ids = frame[data.id_column].str.strip() if data.id_column else rel
    if ids.duplicated().any():
        raise DataError(f"{file}: {'id' if data.id_column else 'path'} {ids[ids.duplicated()].iloc[0]!r} appears twice; each row must be one unique image")
    y, classes, task = _manifest_labels(frame, data)
    groups = frame[data.group_column].str.strip().to_numpy(dtype=object) if data.group_column else None
    if groups is not None and (groups == "").any():
        raise DataError(f"{file}: group column '{data.group_column}' is empty at row {int(np.flatnonzero(groups == '')[0])}; fill it or set data.group_column: null")
    if groups is not None or task == "multilabel":
        keep = _limit(groups if groups is not None else np.asarray(ids, dtype=object), data.limit, seed, stratify=False)
    else:
        keep = _limit(np.asarray(y), data.limit, seed, stratify=True)
    ids, paths = ids.iloc[keep].reset_index(drop=True), [paths[i] for i in keep]
    y = [y[i] for i in keep] if task == "multilabel" else np.asarray(y)[keep]
    if groups is not None:
        groups = groups[keep]
        split = group_split(groups, data.val_fraction, data.test_fraction, seed)
        assert_groups_disjoint(groups, split)
    elif task == "multilabel":
        split = group_split(np.asarray(ids, dtype=object), data.val_fraction, data.test_fraction, seed)
    else:
        split = stratified_split(np.asarray(y), data.val_fraction, data.test_fraction, seed)
    table = pd.DataFrame({"sample_id": ids.astype(str), "path": paths, "label": list(y) if task == "multilabel" else y, "split": split})
    if groups is not None:
        table["patient_id"] = pd.Series(groups, dtype=str)
    return table, classes, task


def load(data: DataParams, seed: int, cache_dir: Path) -> tuple[np.ndarray, pd.DataFrame, list[str], str, list[str], dict]:
    """The prepare loader of both sources: ``(images, table, classes, task, skipped, extra)``."""
    if data.source == "imagefolder":
        table, classes, task = load_imagefolder(data, seed)
        where = str(data.root)
    else:
        table, classes, task = load_manifest(data, seed)
        where = str(data.file)
    size, channels = infer_size_and_channels(list(table["path"]), data.image_size, data.channels, where)
    images, keep, skipped = decode_images(table["sample_id"], table["path"], size, cache_dir / f"{channels}ch", data.on_bad_image, channels)
    table = table[keep].drop(columns="path").reset_index(drop=True)
    extra = {"class_index": {c: i for i, c in enumerate(classes)}, "image_size": size, "channels": channels}
    if "patient_id" in table:
        extra["groups"] = {s: int(table.loc[table["split"] == s, "patient_id"].nunique()) for s in FIXED_SPLITS}
    return np.asarray(images), table, classes, task, skipped, extra
