"""params' ``data`` and ``noise`` sections (read by :mod:`sampleval.data.prepare`).

Standard library only: params validation imports it in every stage before any work.
"""
from __future__ import annotations

from dataclasses import dataclass

from sampleval.data import sources
from sampleval.schema import (
    BOOL, FRACTION, NONEMPTY, OPTIONAL_NAME, OPTIONAL_NAMES, OPTIONAL_PATH, Spec, choice, class_pairs, integer, number, one_of, setting,
    subset_of,
)

NOISE_KINDS = ("uniform", "pairwise")  # the noise that can be injected (sampleval.data.noise.inject_noise)
NOISE_SPLITS = ("train", "val")


@dataclass(frozen=True)
class DataParams:
    source: str = setting(one_of(sources.names), "where the data comes from: an entry of sampleval/data/sources.py")
    root: str | None = setting(OPTIONAL_PATH, "folder of a user-provided data set (nih14/chexpert/imagefolder; manifest: what its paths are relative to)")
    val_fraction: float = setting(FRACTION, "share of the samples in the validation split")
    test_fraction: float = setting(FRACTION, "share of the samples in the test split")
    limit: int | None = setting(Spec(lambda x: x is None or (isinstance(x, int) and not isinstance(x, bool) and x > 0), "null or a positive integer"),
                                "optional subsample size for quick runs")
    image_size: int | None = setting(
        Spec(lambda x: x is None or integer(8, 1024).check(x), "an integer in [8, 1024], or null (imagefolder/manifest: the images' own size)",
             coerce=lambda x: None if x is None else int(x)),
        "side of the (square) images after resizing")
    on_bad_image: str = setting(choice("fail", "skip"), "an unreadable image fails the run, or is skipped and listed in the manifest")
    uncertainty: str = setting(choice("ones", "zeros", "ignore"), "CheXpert's -1 (uncertain) labels")
    frontal_only: bool = setting(BOOL, "CheXpert: frontal views only")
    file: str | None = setting(OPTIONAL_PATH, "table: the CSV/parquet file (or sklearn:wine | sklearn:breast_cancer); manifest: the CSV")
    label_column: str = setting(NONEMPTY, "table/manifest: the column of class names")
    path_column: str = setting(NONEMPTY, "manifest: the column of image paths")
    group_column: str | None = setting(OPTIONAL_NAME, "manifest: patient/site/session column for group-wise splits")
    id_column: str | None = setting(OPTIONAL_NAME, "table/manifest: the column of unique sample ids")
    finding_columns: list[str] | None = setting(OPTIONAL_NAMES, "manifest multi-label: the columns of 0/1 findings")
    label_separator: str | None = setting(Spec(lambda x: x is None or (isinstance(x, str) and len(x) >= 1), "null or a separator string such as '|'"),
                                          "manifest multi-label: the separator of findings in label_column")
    feature_columns: list[str] | None = setting(OPTIONAL_NAMES, "table: the feature columns (null: every column but label and id)")
    categorical_columns: list[str] | None = setting(OPTIONAL_NAMES, "table: the one-hot encoded columns (null: the non-numeric ones)")
    channels: str | int = setting(Spec(lambda x: x in ("auto", 1, 3), "auto (RGB when any image has colour, else grayscale), 1 or 3"),
                                  "imagefolder/manifest: image channels")


@dataclass(frozen=True)
class NoiseParams:
    kind: str = setting(choice("auto", "none", *NOISE_KINDS), "label noise injected: auto (sampleval.config.resolve_noise), none or a kind")
    rate: float = setting(number(0, 1, hi_open=True), "share of the eligible (pairwise: source-class) samples relabelled")
    pairs: list = setting(class_pairs(), "pairwise: [source, target] class pairs")
    splits: list[str] = setting(subset_of(*NOISE_SPLITS), "the splits that receive noise")
