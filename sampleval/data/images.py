"""Image decoding and the on-disk uint8 image cache shared by the image sources.

Images are decoded once (PIL, grayscale or RGB, bilinear resize) into an on-disk cache
(:class:`ImageCache`); later calls read the cache instead of decoding again. A missing or
unreadable file fails naming it, or is skipped and listed (``on_bad_image: skip``).
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from sampleval.io import atomic_path, write_parquet
from sampleval.data.prepared import DataError

log = logging.getLogger(__name__)

PROGRESS_MIN_IMAGES = 300  # show a progress bar when decoding at least this many images
DECODE_BATCH = 256
KNOWN_BAD = -2  # ImageCache.lookup: this file version could not be decoded before
BAD_IMAGE_POLICIES = ("fail", "skip")


def _decode_image(path: Path, image_size: int, channels: int = 1) -> np.ndarray:
    """Decode one image file to a uint8 ``(image_size, image_size)`` grayscale array, or
    ``(3, image_size, image_size)`` RGB when ``channels`` is 3.

    Converted with PIL to mode 'L' (16-bit / float images are min-max scaled to 0..255
    first) or 'RGB', and resized with bilinear interpolation.
    """
    with Image.open(path) as img:
        img.load()
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            arr = np.asarray(img, dtype=np.float64)
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
            gray = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
        else:
            gray = img.convert("L" if channels == 1 else "RGB")
        if channels == 3 and gray.mode != "RGB":
            gray = gray.convert("RGB")
        out = np.asarray(gray.resize((image_size, image_size), Image.Resampling.BILINEAR), dtype=np.uint8)
        return out if channels == 1 else np.ascontiguousarray(out.transpose(2, 0, 1))


def _try_decode(path: Path, image_size: int, channels: int = 1) -> tuple[np.ndarray | None, str]:
    try:
        return (_decode_image(path, image_size) if channels == 1 else _decode_image(path, image_size, channels)), ""
    except Exception as exc:  # any decoder failure means an unreadable file
        return None, f"{type(exc).__name__}: {exc}"


def _decode_into(out: np.ndarray, start: int, paths: Sequence[Path], image_size: int) -> tuple[list[int], list[str]]:
    # the channels are those of ``out`` (N, C, S, S)
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
            extra = [] if out.shape[1] == 1 else [[out.shape[1]] * len(batch)]  # grayscale: the two-argument call
            for pixels, error in pool.map(_try_decode, batch, [image_size] * len(batch), *extra):
                if pixels is None:
                    rows.append(-1)
                else:
                    out[nxt] = pixels.reshape(out.shape[1:])
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

    ``images_<size>.npy`` holds uint8 ``(rows, 1, size, size)`` (RGB, ``channels=3``:
    ``images_<size>_rgb.npy`` ``(rows, 3, size, size)`` and ``index_rgb.parquet``); ``index.parquet`` maps each
    cached file key to its row: columns ``file`` (the sample id), ``image_size``, ``row``
    (-1: the file could not be decoded; it is not tried again until it changes),
    ``file_bytes`` / ``file_mtime_ns`` (the source file when decoded: a changed file is
    decoded again) and ``npy_bytes`` / ``npy_mtime_ns`` (the stamp of the .npy the rows
    refer to: an index that does not match its .npy, e.g. after an interrupted write, is
    ignored). Both files are written atomically; new images are appended, so a call
    with a subset (or a superset) of earlier files decodes only what is not cached yet.
    """

    COLUMNS = ("file", "image_size", "row", "file_bytes", "file_mtime_ns", "npy_bytes", "npy_mtime_ns")

    def __init__(self, cache_dir: str | os.PathLike, image_size: int, channels: int = 1):
        self.dir = Path(cache_dir)
        self.image_size = int(image_size)
        self.channels = int(channels)
        suffix = "" if self.channels == 1 else "_rgb"
        self.npy_path = self.dir / f"images_{self.image_size}{suffix}.npy"
        self.index_path = self.dir / f"index{suffix}.parquet"

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
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n_old + len(paths), self.channels, size, size))
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
    channels: int = 1,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode (or read from the cache) the images of ``paths``; ``keys`` name them.

    Returns ``(images, keep, skipped)``: uint8 ``(keep.sum(), channels, S, S)`` (a read-only memmap
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

    cache = ImageCache(cache_dir, image_size, channels) if cache_dir is not None else None
    rows = cache.lookup(keys, stamps) if cache else np.full(len(keys), -1, dtype=np.int64)
    todo = [i for i in range(len(keys)) if rows[i] == -1 and stamps[i] is not None]
    errors = {i: "unreadable when last decoded; unchanged since" for i in np.flatnonzero(rows == KNOWN_BAD)}
    buffer = None
    if todo:
        if cache:
            new_rows, messages = cache.add([keys[i] for i in todo], [paths[i] for i in todo], [stamps[i] for i in todo])
        else:
            buffer = np.zeros((len(todo), channels, image_size, image_size), dtype=np.uint8)
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
    images = _gather(source, rows[keep], image_size, channels)
    return images, keep, skipped


def _gather(source: np.ndarray | None, rows: np.ndarray, image_size: int, channels: int = 1) -> np.ndarray:
    """``source[rows]``, as a view (no copy) when ``rows`` are consecutive."""
    if len(rows) == 0 or source is None:
        return np.zeros((0, channels, image_size, image_size), dtype=np.uint8)
    if np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
        return source[rows[0] : rows[0] + len(rows)]
    return np.asarray(source[rows])


GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def image_headers(paths: Sequence[Path]) -> tuple[list[tuple[int, int] | None], list[str | None]]:
    """``(sizes, modes)`` read from the file headers only (no decoding); None for a file
    that cannot be opened (decoding reports it later, per data.on_bad_image)."""
    sizes, modes = [], []
    for p in paths:
        try:
            with Image.open(p) as img:
                sizes.append(tuple(img.size))
                modes.append(img.mode)
        except Exception:
            sizes.append(None)
            modes.append(None)
    return sizes, modes


def infer_size_and_channels(paths: Sequence[Path], image_size: int | None, channels, where: str) -> tuple[int, int]:
    """``data.image_size`` null: the images' own (square, common) size; ``data.channels`` auto:
    3 when any image has colour (a non-grayscale PIL mode), else 1. Fails in one line
    naming ``where`` and the fix when the images do not share one square size."""
    if image_size is not None and channels != "auto":
        return int(image_size), int(channels)
    sizes, modes = image_headers(paths)
    if channels == "auto":
        channels = 3 if any(m is not None and m not in GRAY_MODES for m in modes) else 1
    if image_size is None:
        found = sorted({s for s in sizes if s is not None})
        if not found:
            raise DataError(f"{where}: none of the {len(paths)} images could be opened; check the files (or give data.image_size)")
        if len(found) > 1 or found[0][0] != found[0][1]:
            shown = ", ".join(f"{w}x{h}" for w, h in found[:4]) + (" ..." if len(found) > 4 else "")
            raise DataError(f"{where}: the images do not share one square size ({shown}); set data.image_size to resize them all to one size")
        image_size = found[0][0]
        if not 8 <= image_size <= 1024:
            raise DataError(f"{where}: the images are {image_size}x{image_size}; set data.image_size to a size in [8, 1024]")
    return int(image_size), int(channels)
