"""Stratified and group-aware (patient-wise) train/val/test splits."""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, train_test_split


def stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Return an array of 'train' / 'val' / 'test', stratified by class."""
    idx = np.arange(len(labels))
    n, n_classes = len(labels), len(np.unique(labels))
    n_test = int(np.ceil(test_fraction * n))  # sklearn's rounding
    n_val = int(np.ceil(val_fraction / (1.0 - test_fraction) * (n - n_test)))
    if min(n_test, n_val, n - n_test - n_val) < n_classes:
        raise ValueError(
            f"a stratified split of {n} samples gives {n - n_test - n_val} train / {n_val} val / {n_test} test, but each split "
            f"needs at least one sample of each of the {n_classes} classes; raise data.limit (or null) or data.val_fraction / data.test_fraction"
        )
    rest, test = train_test_split(idx, test_size=test_fraction, stratify=labels, random_state=seed)
    val_share = val_fraction / (1.0 - test_fraction)
    train, val = train_test_split(rest, test_size=val_share, stratify=labels[rest], random_state=seed + 1)
    out = np.empty(len(labels), dtype=object)
    out[train], out[val], out[test] = "train", "val", "test"
    return out


def group_split(groups: np.ndarray, val_fraction: float, test_fraction: float, seed: int, fixed_test: np.ndarray | None = None) -> np.ndarray:
    """Patient-wise split: no group appears in two splits.

    ``fixed_test`` (a boolean mask, e.g. from the official test list) replaces the random
    test carve-out; validation is then carved group-wise out of the rest.
    """
    idx = np.arange(len(groups))
    if fixed_test is None:
        gss = GroupShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
        rest, test = next(gss.split(idx, groups=groups))
        rest_val_share = val_fraction / (1.0 - test_fraction)
    else:
        test = idx[fixed_test]
        rest = idx[~fixed_test]
        rest_val_share = val_fraction
    gss = GroupShuffleSplit(n_splits=1, test_size=rest_val_share, random_state=seed + 1)
    tr, va = next(gss.split(rest, groups=groups[rest]))
    out = np.empty(len(groups), dtype=object)
    out[rest[tr]], out[rest[va]], out[test] = "train", "val", "test"
    assert_groups_disjoint(groups, out)
    return out


def assert_groups_disjoint(groups: np.ndarray, splits: np.ndarray) -> None:
    seen: dict = {}
    for name in ("train", "val", "test"):
        s = set(groups[splits == name].tolist())
        for other, o in seen.items():
            both = s & o
            if both:
                raise AssertionError(f"{len(both)} patients appear in both {other} and {name} (e.g. {sorted(both)[:3]})")
        seen[name] = s


def stratified_limit(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Sorted row indices of a stratified subsample of ``limit`` rows (all rows when null or larger)."""
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    keep, _ = train_test_split(np.arange(len(labels)), train_size=limit, stratify=labels, random_state=seed)
    return np.sort(keep)
