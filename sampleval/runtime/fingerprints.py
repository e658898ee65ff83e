"""Content fingerprints: the shared part of a job-cache key (:class:`sampleval.runtime.compute.JobCache`).

A cached job is reused only when everything it read hashes the same: the prepared data, the
training recipe, the baseline's weights. Each of those is hashed here, once, by content
(never by path or modification time), so that two stages that read the same data agree.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict

import numpy as np


def table_hash(table) -> str:
    """A table's contents, multi-label columns (an array per row) included."""
    import pandas as pd

    h = hashlib.sha256()
    for col in table.columns:
        values = table[col]
        if values.dtype == object:
            values = values.map(lambda v: np.asarray(v).tobytes().hex() if isinstance(v, (np.ndarray, list)) else str(v))
        h.update(str(col).encode())
        h.update(pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes())
    return h.hexdigest()


def arrays_hash(arrays: Mapping[str, object] | Iterable[tuple[str, object]]) -> str:
    """Named arrays (numpy or torch; dtype, shape and bytes), in the given order."""
    items = arrays.items() if isinstance(arrays, Mapping) else arrays
    h = hashlib.sha256()
    for name, array in items:
        if hasattr(array, "detach"):  # a torch tensor
            array = array.detach().cpu().contiguous().numpy()
        a = np.ascontiguousarray(array)
        h.update(f"{name}:{a.dtype}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def prepared_fingerprint(prepared) -> str:
    """The prepared data: images, the sample table (splits, labels, flips), task and classes."""
    h = hashlib.sha256(arrays_hash({"images": prepared.images}).encode())
    h.update(table_hash(prepared.table).encode())
    h.update(f"{prepared.task}|{prepared.classes}".encode())
    return h.hexdigest()


def recipe_fingerprint(prepared, cfg) -> str:
    """What a retraining depends on besides its job: the prepared data and the recipe (``TrainConfig``)."""
    h = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True, default=str).encode())
    h.update(prepared_fingerprint(prepared).encode())
    return h.hexdigest()
