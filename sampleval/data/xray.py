"""Chest X-ray sources: NIH ChestXray14 and CheXpert (multi-label, 14 findings each).

Both loaders return a :class:`SourceData`: uint8 grayscale images ``(N, 1, S, S)``
aligned row by row with a table of ``sample_id`` / ``label`` / ``patient_id`` /
``split`` (plus ``label_mask`` for CheXpert with ``uncertainty="ignore"``).
Splits are patient-wise: no patient has images in two splits.

Images are decoded once into an on-disk cache (:mod:`sampleval.data.images`); later
calls read the cache instead of decoding again.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from sampleval.data.images import decode_images
from sampleval.data.prepared import DataError
from sampleval.data.splits import group_split

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
