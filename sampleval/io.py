"""Atomic writers: every output is written to a temporary file and renamed,
so that an interrupted stage never leaves a half-written file behind."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The file gets the mode a plain ``open(path, "w")`` would give it (0666 minus the
    umask), not ``mkstemp``'s private 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    """The process umask (reading it means setting it; it is put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def round_floats(obj: Any, ndigits: int = 4) -> Any:
    """Round every float in a nested structure (metrics are compared at this precision);
    NaN and inf become None (null), which strict JSON readers accept."""
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return round(value, ndigits) if np.isfinite(value) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, dict):
        return {k: round_floats(v, ndigits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [round_floats(v, ndigits) for v in obj]
    return obj


def write_json(path: str | os.PathLike, obj: Any, ndigits: int | None = 4) -> None:
    if ndigits is not None:
        obj = round_floats(obj, ndigits)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_parquet(path: str | os.PathLike, df) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def torch_save(path: str | os.PathLike, obj: Any) -> None:
    """torch.save, atomically and byte-for-byte reproducibly: saving to a named file embeds
    that (here random, temporary) name in the zip archive, so serialise to memory first."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(_canonical(obj), buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def save_png(fig, path: str | os.PathLike, dpi: int = 110, bbox_inches: str | None = "tight") -> None:
    """Write a matplotlib figure as PNG atomically and close it. No "Software" metadata (it
    names matplotlib's version; PNG has no timestamp here), so the bytes depend on the drawing
    only. matplotlib is imported here, not at module level: this module is imported everywhere."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches=bbox_inches, metadata={"Software": None})
    plt.close(fig)


def _canonical(obj: Any) -> Any:
    """``obj`` rebuilt so that its pickle depends on its values only, not on object identity.

    Pickle writes a string or container once and refers back to it when the *same object*
    appears again; equal but distinct objects are written twice. After ``--resume`` the
    optimiser's keys ('lr', 'eps', ...) are strings unpickled from the checkpoint, not the
    interned literals of an uninterrupted run, so the same values pickled to different
    bytes. Here every string is interned (equal strings: one object) and every container
    is rebuilt (no shared containers); tensors and other values pass through."""
    if isinstance(obj, str):
        return sys.intern(str(obj))
    if isinstance(obj, dict) and type(obj) is dict:
        return {_canonical(k): _canonical(v) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(_canonical(v) for v in obj)
    return obj


def hash_ids(ids) -> str:
    """Order-independent SHA-256 of a set of sample ids."""
    joined = "\n".join(sorted(str(i) for i in ids))
    return hashlib.sha256(joined.encode()).hexdigest()


def hash_array(array: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(str(array.dtype).encode())
    h.update(str(array.shape).encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()
