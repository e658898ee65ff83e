"""Chest X-ray sources: NIH ChestXray14 and CheXpert (multi-label, 14 findings each).

Both loaders return a :class:`SourceData`: uint8 grayscale images ``(N, 1, S, S)``
aligned row by row with a table of ``sample_id`` / ``label`` / ``patient_id`` /
``split`` (plus ``label_mask`` for CheXpert with ``uncertainty="ignore"``).
Splits are patient-wise: no patient has images in two splits.

Images are decoded once (PIL, grayscale, bilinear resize) into an on-disk cache
(:class:`ImageCache`); later calls read the cache instead of decoding again.
"""
from __future__ import annotations

import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from ..io import atomic_path, write_parquet
from .prepared import DataError
from .splits import group_split

log = logging.getLogger(__name__)

NIH14_FINDINGS = [
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
]

CHEXPERT_OBSERVATIONS = [
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
]

NIH_CSV_NAMES = ("Data_Entry.csv", "Data_Entry_2017_v2020.csv", "Data_Entry_2017_v2020.csv.gz", "Data_Entry_2017.csv", "Data_Entry_2017.csv.gz")
NIH_REQUIRED_COLUMNS = ("Image Index", "Finding Labels", "Patient ID")
CHEXPERT_REQUIRED_COLUMNS = ("Path", "Frontal/Lateral", *CHEXPERT_OBSERVATIONS)
UNCERTAINTY_POLICIES = ("ones", "zeros", "ignore")
BAD_IMAGE_POLICIES = ("fail", "skip")
PROGRESS_MIN_IMAGES = 300  # show a progress bar when decoding at least this many images
DECODE_BATCH = 256
KNOWN_BAD = -2  # ImageCache.lookup: this file version could not be decoded before


@dataclass
class SourceData:
    """A loaded multi-label source.

    ``images[i]`` is the image of ``table.iloc[i]``. ``table`` columns: ``sample_id`` (str),
    ``label`` (int8 array of length ``len(classes)``), ``patient_id`` (str), ``split``
    ('train' / 'val' / 'test'), and ``label_mask`` (int8 array, 0 = ignore this entry)
    only for CheXpert with ``uncertainty="ignore"``. ``skipped`` lists the sample ids of
    missing or unreadable images that were dropped (``on_bad_image="skip"``).
    """

    images: np.ndarray
    table: pd.DataFrame
    classes: list[str]
    skipped: list[str] = field(default_factory=list)
    task: str = "multilabel"


# --------------------------------------------------------------------------- labels


def parse_nih14_labels(finding_labels: pd.Series) -> np.ndarray:
    """Multi-hot int8 ``(N, 14)`` in :data:`NIH14_FINDINGS` order from ``Finding Labels``.

    Entries are pipe-separated finding names; ``"No Finding"`` is all zeros. An unknown
    name or a blank entry raises :class:`DataError` naming it.
    """
    position = {name: i for i, name in enumerate(NIH14_FINDINGS)}
    out = np.zeros((len(finding_labels), len(NIH14_FINDINGS)), dtype=np.int8)
    for i, entry in enumerate(finding_labels):
        if not isinstance(entry, str) or not entry.strip():
            raise DataError(f"NIH 'Finding Labels' row {i} is blank; use 'No Finding' for an image without findings")
        for name in (part.strip() for part in entry.split("|")):
            if name == "No Finding":
                continue
            if name not in position:
                raise DataError(f"unknown NIH finding {name!r} in 'Finding Labels' row {i} ({entry!r}); known findings: {', '.join(NIH14_FINDINGS)}")
            out[i, position[name]] = 1
    return out


def chexpert_labels(values: pd.DataFrame, uncertainty: str) -> tuple[np.ndarray, np.ndarray]:
    """Map CheXpert label cells (1 / 0 / -1 / blank) to ``(labels, mask)``, both int8.

    Blank means not mentioned: label 0. ``uncertainty`` says what -1 (uncertain) becomes:
    ``ones`` -> 1, ``zeros`` -> 0, ``ignore`` -> label 0 with mask 0 (a loss should skip
    it). The mask is 1 everywhere else (all ones for ``ones`` / ``zeros``).
    """
    if uncertainty not in UNCERTAINTY_POLICIES:
        raise DataError(f"uncertainty must be one of {', '.join(UNCERTAINTY_POLICIES)} (got {uncertainty!r})")
    numeric = values.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    blank = values.isna().to_numpy()
    bad = ~blank & ~np.isin(numeric, (1.0, 0.0, -1.0))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"CheXpert column {values.columns[c]!r} row {r} has value {values.iat[r, c]!r}; expected 1, 0, -1 or blank")
    uncertain = numeric == -1.0
    labels = (numeric == 1.0) | (uncertain & (uncertainty == "ones"))
    mask = ~(uncertain & (uncertainty == "ignore"))
    return labels.astype(np.int8), mask.astype(np.int8)


# --------------------------------------------------------------------------- CSV readers


def _read_csv(path: Path, required: Sequence[str], fix: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=True)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{path} is missing column(s) {', '.join(repr(c) for c in missing)}; {fix}")
    return frame


def read_nih14_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read NIH ``Data_Entry.csv`` / ``Data_Entry_2017_v2020.csv(.gz)`` (all columns as str).

    Adds ``patient_id``: ``Patient ID`` zero-padded to 8 digits, as in the file names.
    Missing required columns, blank image names or duplicate image names raise
    :class:`DataError`.
    """
    path = Path(path)
    fix = "use the unmodified NIH ChestXray14 Data_Entry_2017_v2020.csv (columns 'Image Index', 'Finding Labels', 'Follow-up #', 'Patient ID', ...)"
    frame = _read_csv(path, NIH_REQUIRED_COLUMNS, fix)
    for column in NIH_REQUIRED_COLUMNS:
        if frame[column].isna().any():
            raise DataError(f"{path}: column {column!r} has {int(frame[column].isna().sum())} blank value(s); {fix}")
    dup = frame["Image Index"][frame["Image Index"].duplicated()]
    if len(dup):
        raise DataError(f"{path}: image {dup.iloc[0]!r} is listed twice; each image needs one row")
    pid = frame["Patient ID"].str.strip()
    frame["patient_id"] = pid.where(~pid.str.isdigit(), pid.str.zfill(8)).astype(str)
    return frame


def chexpert_patient_id(path: str) -> str:
    """``'patient00042'`` from a CheXpert path such as ``.../train/patient00042/study1/view1_frontal.jpg``."""
    match = re.search(r"patient\d+", path)
    if match is None:
        raise DataError(f"no patientNNNNN folder in CheXpert path {path!r}; use the original CheXpert 'Path' values")
    return match.group(0)


def read_chexpert_csv(path: str | os.PathLike, uncertainty: str, frontal_only: bool) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Read CheXpert ``train.csv``; return ``(frame, labels, mask)``.

    ``frame`` holds the kept rows (index reset) plus ``patient_id``; ``labels`` and ``mask``
    are int8 ``(N, 14)`` in :data:`CHEXPERT_OBSERVATIONS` order (see :func:`chexpert_labels`).
    ``frontal_only`` keeps rows whose ``Frontal/Lateral`` is ``Frontal``.
    """
    path = Path(path)
    fix = "use the unmodified CheXpert train.csv (columns Path, Sex, Age, Frontal/Lateral, AP/PA, No Finding ... Support Devices)"
    frame = _read_csv(path, CHEXPERT_REQUIRED_COLUMNS, fix)
    if frame["Path"].isna().any():
        raise DataError(f"{path}: column 'Path' has blank values; {fix}")
    if frontal_only:
        frame = frame[frame["Frontal/Lateral"].fillna("").str.strip().str.lower() == "frontal"]
    frame = frame.reset_index(drop=True)
    frame["patient_id"] = [chexpert_patient_id(p) for p in frame["Path"]]
    labels, mask = chexpert_labels(frame[CHEXPERT_OBSERVATIONS], uncertainty)
    return frame, labels, mask


# --------------------------------------------------------------------------- selection and splits


def subsample_patients(patients: Sequence[str], limit: int, seed: int) -> np.ndarray:
    """Boolean mask keeping whole patients, drawn in a seeded random order until at
    least ``limit`` images are kept (overshoots by less than one patient's images)."""
    patients = np.asarray(patients, dtype=object)
    if limit is None or limit >= len(patients):
        return np.ones(len(patients), dtype=bool)
    if limit <= 0:
        raise DataError(f"limit must be a positive number of images (got {limit})")
    unique, counts = np.unique(patients.astype(str), return_counts=True)
    order = np.random.default_rng(seed).permutation(len(unique))
    reached = np.cumsum(counts[order]) >= limit
    n_keep = int(np.argmax(reached)) + 1
    return np.isin(patients.astype(str), unique[order[:n_keep]])


def _check_fractions(val_fraction: float, test_fraction: float | None) -> None:
    """``test_fraction`` None: the test split is fixed, only ``val_fraction`` matters."""
    if test_fraction is None:
        if not 0 < val_fraction < 1:
            raise DataError(f"val_fraction must be in (0, 1) (got {val_fraction})")
    elif not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError(f"val_fraction and test_fraction must be in (0, 1) with a sum below 1 (got {val_fraction}, {test_fraction})")


# --------------------------------------------------------------------------- image decoding and cache


def _decode_image(path: Path, image_size: int) -> np.ndarray:
    """Decode one image file to a uint8 ``(image_size, image_size)`` grayscale array.

    Converted with PIL to mode 'L' (16-bit / float images are min-max scaled to 0..255
    first) and resized with bilinear interpolation.
    """
    with Image.open(path) as img:
        img.load()
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            arr = np.asarray(img, dtype=np.float64)
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
            gray = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
        else:
            gray = img.convert("L")
        return np.asarray(gray.resize((image_size, image_size), Image.Resampling.BILINEAR), dtype=np.uint8)


def _try_decode(path: Path, image_size: int) -> tuple[np.ndarray | None, str]:
    try:
        return _decode_image(path, image_size), ""
    except Exception as exc:  # any decoder failure means an unreadable file
        return None, f"{type(exc).__name__}: {exc}"


def _decode_into(out: np.ndarray, start: int, paths: Sequence[Path], image_size: int) -> tuple[list[int], list[str]]:
    """Decode ``paths`` into consecutive rows ``out[start:]`` (good images only, in order).

    Returns ``(rows, errors)``: per path its row in ``out`` (-1 when unreadable) and its
    error message ('' when fine). Decodes on a few threads; shows a progress bar when
    there are many images.
    """
    from tqdm import tqdm

    rows, errors, nxt = [], [], start
    workers = max(1, min(8, os.cpu_count() or 1))
    bar = tqdm(total=len(paths), desc="decoding images", unit="img", disable=len(paths) < PROGRESS_MIN_IMAGES)
    with ThreadPoolExecutor(workers) as pool:
        for lo in range(0, len(paths), DECODE_BATCH):
            batch = paths[lo : lo + DECODE_BATCH]
            for pixels, error in pool.map(_try_decode, batch, [image_size] * len(batch)):
                if pixels is None:
                    rows.append(-1)
                else:
                    out[nxt, 0] = pixels
                    rows.append(nxt)
                    nxt += 1
                errors.append(error)
            bar.update(len(batch))
    bar.close()
    return rows, errors


def _file_stamp(path: Path) -> tuple[int, int] | None:
    """``(size in bytes, mtime_ns)`` of a regular file, or None when it does not exist."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns) if path.is_file() else None


class ImageCache:
    """Decoded-image cache in ``cache_dir``.

    ``images_<size>.npy`` holds uint8 ``(rows, 1, size, size)``; ``index.parquet`` maps each
    cached file key to its row: columns ``file`` (the sample id), ``image_size``, ``row``
    (-1: the file could not be decoded; it is not tried again until it changes),
    ``file_bytes`` / ``file_mtime_ns`` (the source file when decoded: a changed file is
    decoded again) and ``npy_bytes`` / ``npy_mtime_ns`` (the stamp of the .npy the rows
    refer to: an index that does not match its .npy, e.g. after an interrupted write, is
    ignored). Both files are written atomically; new images are appended, so a call
    with a subset (or a superset) of earlier files decodes only what is not cached yet.
    """

    COLUMNS = ("file", "image_size", "row", "file_bytes", "file_mtime_ns", "npy_bytes", "npy_mtime_ns")

    def __init__(self, cache_dir: str | os.PathLike, image_size: int):
        self.dir = Path(cache_dir)
        self.image_size = int(image_size)
        self.npy_path = self.dir / f"images_{self.image_size}.npy"
        self.index_path = self.dir / "index.parquet"

    def _read_index(self) -> pd.DataFrame:
        try:
            index = pd.read_parquet(self.index_path)
        except Exception:  # absent or unreadable index: start over
            return pd.DataFrame({c: pd.Series(dtype=object if c == "file" else np.int64) for c in self.COLUMNS})
        return index if set(self.COLUMNS) <= set(index.columns) else pd.DataFrame(columns=list(self.COLUMNS))

    def entries(self) -> pd.DataFrame:
        """Index rows for this image size, or none when they do not match the .npy on disk."""
        index = self._read_index()
        mine = index[index["image_size"] == self.image_size]
        stamp = _file_stamp(self.npy_path)
        if mine.empty or stamp is None:
            return mine.iloc[0:0]
        if not ((mine["npy_bytes"] == stamp[0]) & (mine["npy_mtime_ns"] == stamp[1])).all():
            return mine.iloc[0:0]
        return mine

    def lookup(self, keys: Sequence[str], stamps: Sequence[tuple[int, int] | None]) -> np.ndarray:
        """Cached row per key: -1 when not cached (or cached from a different file version),
        :data:`KNOWN_BAD` when this version of the file was found unreadable before."""
        mine = self.entries()
        known = dict(zip(mine["file"], zip(mine["row"], mine["file_bytes"], mine["file_mtime_ns"])))
        rows = np.full(len(keys), -1, dtype=np.int64)
        for i, (key, stamp) in enumerate(zip(keys, stamps)):
            entry = known.get(key)
            if entry is not None and stamp is not None and (int(entry[1]), int(entry[2])) == stamp:
                rows[i] = int(entry[0]) if entry[0] >= 0 else KNOWN_BAD
        return rows

    def array(self) -> np.ndarray:
        return np.load(self.npy_path, mmap_mode="r")

    def add(self, keys: Sequence[str], paths: Sequence[Path], stamps: Sequence[tuple[int, int]]) -> tuple[list[int], list[str]]:
        """Decode ``paths`` and append them to the cache; return ``(rows, errors)`` as
        :func:`_decode_into` (unreadable images are recorded with row -1)."""
        size = self.image_size
        old = self.entries()
        n_old = len(self.array()) if len(old) else 0
        with atomic_path(self.npy_path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n_old + len(paths), 1, size, size))
            if n_old:
                previous = self.array()
                for lo in range(0, n_old, 1024):
                    hi = min(lo + 1024, n_old)
                    out[lo:hi] = previous[lo:hi]
                del previous
            rows, errors = _decode_into(out, n_old, paths, size)
            out.flush()
            del out
        npy_bytes, npy_mtime = _file_stamp(self.npy_path)
        new = pd.DataFrame(
            {
                "file": list(keys),
                "row": rows,
                "file_bytes": [s[0] for s in stamps],
                "file_mtime_ns": [s[1] for s in stamps],
            }
        )
        kept = old[~old["file"].isin(new["file"])][["file", "row", "file_bytes", "file_mtime_ns"]]
        mine = pd.concat([kept, new], ignore_index=True)
        mine["image_size"], mine["npy_bytes"], mine["npy_mtime_ns"] = size, npy_bytes, npy_mtime
        index = self._read_index()
        others = index[index["image_size"] != size]
        write_parquet(self.index_path, pd.concat([others, mine[list(self.COLUMNS)]], ignore_index=True).astype({c: np.int64 for c in self.COLUMNS[1:]}))
        return rows, errors


def _bad_image_error(files: list[str], reason: str, total: int) -> DataError:
    shown = "; ".join(files[:5]) + (f"; ... ({total} in all)" if total > 5 else "")
    return DataError(f"{reason}: {shown}; restore the file(s) or set data.on_bad_image: skip to drop them")


def decode_images(
    keys: Sequence[str],
    paths: Sequence[Path],
    image_size: int,
    cache_dir: str | os.PathLike | None = None,
    on_bad_image: str = "fail",
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode (or read from the cache) the images of ``paths``; ``keys`` name them.

    Returns ``(images, keep, skipped)``: uint8 ``(keep.sum(), 1, S, S)`` (a read-only memmap
    when the cached rows are contiguous), a boolean mask of the readable inputs, and the
    keys of missing or unreadable files. ``on_bad_image="fail"`` raises :class:`DataError`
    naming them instead (after caching the readable ones).
    """
    if on_bad_image not in BAD_IMAGE_POLICIES:
        raise DataError(f"on_bad_image must be one of {', '.join(BAD_IMAGE_POLICIES)} (got {on_bad_image!r})")
    keys, paths = [str(k) for k in keys], [Path(p) for p in paths]
    stamps = [_file_stamp(p) for p in paths]
    missing = [i for i, s in enumerate(stamps) if s is None]
    if missing and on_bad_image == "fail":
        raise _bad_image_error([str(paths[i]) for i in missing], "image file(s) not found", len(missing))

    cache = ImageCache(cache_dir, image_size) if cache_dir is not None else None
    rows = cache.lookup(keys, stamps) if cache else np.full(len(keys), -1, dtype=np.int64)
    todo = [i for i in range(len(keys)) if rows[i] == -1 and stamps[i] is not None]
    errors = {i: "unreadable when last decoded; unchanged since" for i in np.flatnonzero(rows == KNOWN_BAD)}
    buffer = None
    if todo:
        if cache:
            new_rows, messages = cache.add([keys[i] for i in todo], [paths[i] for i in todo], [stamps[i] for i in todo])
        else:
            buffer = np.zeros((len(todo), 1, image_size, image_size), dtype=np.uint8)
            new_rows, messages = _decode_into(buffer, 0, [paths[i] for i in todo], image_size)
        for i, row, message in zip(todo, new_rows, messages):
            rows[i] = row  # -1 when unreadable
            if message:
                errors[i] = message
    if errors and on_bad_image == "fail":
        bad = [f"{paths[i]} ({errors[i]})" for i in errors]
        raise _bad_image_error(bad, "unreadable image file(s)", len(bad))

    keep = rows >= 0
    skipped = [keys[i] for i in range(len(keys)) if not keep[i]]
    if skipped:  # on_bad_image == "skip": dropped, but never silently
        reasons = [f"{paths[i].name} ({'not found' if stamps[i] is None else errors.get(i, 'unreadable')})" for i in np.flatnonzero(~keep)]
        log.warning(
            "skipped %d of %d images (data.on_bad_image: skip; all listed in the manifest): %s%s",
            len(skipped), len(keys), "; ".join(reasons[:5]), f"; ... and {len(skipped) - 5} more" if len(skipped) > 5 else "",
        )
    source = (cache.array() if cache else buffer) if keep.any() else None
    images = _gather(source, rows[keep], image_size)
    return images, keep, skipped


def _gather(source: np.ndarray | None, rows: np.ndarray, image_size: int) -> np.ndarray:
    """``source[rows]``, as a view (no copy) when ``rows`` are consecutive."""
    if len(rows) == 0 or source is None:
        return np.zeros((0, 1, image_size, image_size), dtype=np.uint8)
    if np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
        return source[rows[0] : rows[0] + len(rows)]
    return np.asarray(source[rows])


# --------------------------------------------------------------------------- loaders


def _assemble(
    sample_ids: Sequence[str],
    paths: Sequence[Path],
    labels: np.ndarray,
    patient_ids: Sequence[str],
    split: np.ndarray,
    classes: list[str],
    image_size: int,
    cache_dir,
    on_bad_image: str,
    label_mask: np.ndarray | None = None,
) -> SourceData:
    images, keep, skipped = decode_images(sample_ids, paths, image_size, cache_dir, on_bad_image)
    table = pd.DataFrame(
        {
            "sample_id": pd.Series(list(sample_ids), dtype=str),
            "label": list(labels),
            "patient_id": pd.Series(list(patient_ids), dtype=str),
            "split": pd.Series(split, dtype=str),
        }
    )
    if label_mask is not None:
        table["label_mask"] = list(label_mask)
    table = table[keep].reset_index(drop=True)
    return SourceData(images=images, table=table, classes=list(classes), skipped=skipped)


def find_nih14_csv(root: Path) -> Path:
    """The NIH metadata CSV under ``root`` (first of :data:`NIH_CSV_NAMES` that exists)."""
    if not root.is_dir():
        raise DataError(f"data.root={root} does not exist; put NIH ChestXray14 at {root}/Data_Entry.csv and {root}/images/")
    for name in NIH_CSV_NAMES:
        if (root / name).is_file():
            return root / name
    raise DataError(
        f"data.root={root} has no Data_Entry.csv (nor {', '.join(NIH_CSV_NAMES[1:])}); "
        f"put NIH ChestXray14 at {root}/Data_Entry.csv and {root}/images/"
    )


def nih14_image_paths(root: Path, names: Sequence[str]) -> list[Path]:
    """Image files for ``names``: ``root/images/<name>``, or the Kaggle layout
    ``root/images_NNN/images/<name>`` when ``root/images`` does not exist."""
    flat = root / "images"
    parts = sorted(root.glob("images_*/images")) if not flat.is_dir() else []
    if not parts:
        return [flat / n for n in names]
    where = {entry.name: Path(entry.path) for part in parts for entry in os.scandir(part)}
    return [where.get(n, flat / n) for n in names]


def nih14_official_test(root: Path, image_names: pd.Series, patient_ids: pd.Series) -> np.ndarray | None:
    """Mask of images in ``root/test_list.txt`` when both official lists exist, else None.

    Images not in ``test_list.txt`` are train/val. A patient with images on both sides
    raises :class:`DataError`.
    """
    test_list, train_list = root / "test_list.txt", root / "train_val_list.txt"
    if not (test_list.is_file() and train_list.is_file()):
        return None
    listed = {line.strip() for line in test_list.read_text().splitlines() if line.strip()}
    mask = image_names.isin(listed).to_numpy()
    both = set(patient_ids[mask]) & set(patient_ids[~mask])
    if both:
        raise DataError(f"{test_list} splits patient(s) {sorted(both)[:3]} between test and train_val; list whole patients")
    return mask


def load_nih14(
    root: str | os.PathLike,
    image_size: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    limit: int | None = None,
    on_bad_image: str = "fail",
    cache_dir: str | os.PathLike | None = None,
) -> SourceData:
    """Load NIH ChestXray14 from ``root`` (``Data_Entry.csv`` + ``images/``).

    Split patient-wise: with ``train_val_list.txt`` and ``test_list.txt`` in ``root`` the
    official test list is the test split (``test_fraction`` unused) and ``val_fraction`` of
    train_val becomes validation; otherwise ``test_fraction`` / ``val_fraction`` of all
    images. ``limit`` first keeps whole patients, about ``limit`` images (seeded).
    ``sample_id`` is the image file name; ``patient_id`` the 8-digit patient number.
    """
    root = Path(root)
    frame = read_nih14_csv(find_nih14_csv(root))
    if limit is not None:
        frame = frame[subsample_patients(frame["patient_id"], limit, seed)].reset_index(drop=True)
    labels = parse_nih14_labels(frame["Finding Labels"])
    fixed_test = nih14_official_test(root, frame["Image Index"], frame["patient_id"])
    _check_fractions(val_fraction, test_fraction if fixed_test is None else None)
    split = group_split(frame["patient_id"].to_numpy(dtype=object), val_fraction, test_fraction, seed, fixed_test=fixed_test)
    paths = nih14_image_paths(root, frame["Image Index"].tolist())
    return _assemble(frame["Image Index"].tolist(), paths, labels, frame["patient_id"].tolist(), split, NIH14_FINDINGS, image_size, cache_dir, on_bad_image)


def find_chexpert_csv(root: Path) -> Path:
    """``train.csv`` in ``root`` or in ``root/CheXpert-v1.0-small`` / ``root/CheXpert-v1.0``."""
    hint = f"put CheXpert so that {root}/train.csv and {root}/train/patientNNNNN/studyN/viewN_*.jpg exist (the CheXpert-v1.0-small folder, or its parent)"
    if not root.is_dir():
        raise DataError(f"data.root={root} does not exist; {hint}")
    for candidate in (root, root / "CheXpert-v1.0-small", root / "CheXpert-v1.0"):
        if (candidate / "train.csv").is_file():
            return candidate / "train.csv"
    raise DataError(f"data.root={root} has no train.csv; {hint}")


def chexpert_image_path(dataset_dir: Path, csv_path: str) -> Path:
    """File for a CSV ``Path`` like ``CheXpert-v1.0-small/train/...``: the leading
    ``CheXpert-v1.0*`` folder is the folder holding ``train.csv`` (``dataset_dir``)."""
    parts = Path(csv_path).parts
    if parts and parts[0].startswith("CheXpert-v1.0"):
        parts = parts[1:]
    return dataset_dir.joinpath(*parts)


def load_chexpert(
    root: str | os.PathLike,
    image_size: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    uncertainty: str = "ones",
    frontal_only: bool = True,
    limit: int | None = None,
    on_bad_image: str = "fail",
    cache_dir: str | os.PathLike | None = None,
) -> SourceData:
    """Load CheXpert ``train.csv`` and its images from ``root`` (see :func:`find_chexpert_csv`).

    Labels follow ``uncertainty`` (see :func:`chexpert_labels`); with ``"ignore"`` the table
    gets a ``label_mask`` column. Patient-wise random split; ``limit`` keeps whole patients
    (about ``limit`` images, seeded) after the ``frontal_only`` filter. ``sample_id`` is the
    CSV ``Path``; ``patient_id`` is ``patientNNNNN``.
    """
    root = Path(root)
    csv = find_chexpert_csv(root)
    frame, labels, mask = read_chexpert_csv(csv, uncertainty, frontal_only)
    if limit is not None:
        keep = subsample_patients(frame["patient_id"], limit, seed)
        frame, labels, mask = frame[keep].reset_index(drop=True), labels[keep], mask[keep]
    _check_fractions(val_fraction, test_fraction)
    split = group_split(frame["patient_id"].to_numpy(dtype=object), val_fraction, test_fraction, seed)
    paths = [chexpert_image_path(csv.parent, p) for p in frame["Path"]]
    return _assemble(
        frame["Path"].tolist(),
        paths,
        labels,
        frame["patient_id"].tolist(),
        split,
        CHEXPERT_OBSERVATIONS,
        image_size,
        cache_dir,
        on_bad_image,
        label_mask=mask if uncertainty == "ignore" else None,
    )
