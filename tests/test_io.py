import hashlib

import numpy as np
import pandas as pd
import pytest
import torch

from sampleval.io import atomic_path, hash_ids, round_floats, torch_save, write_json, write_parquet


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_outputs_are_byte_identical_across_writes(tmp_path):
    """dvc.lock records output hashes: the same content must give the same bytes."""
    obj = {"w": torch.arange(6.0).reshape(2, 3), "lr": 0.1}
    torch_save(tmp_path / "a.pt", obj)
    torch_save(tmp_path / "b.pt", obj)
    assert _md5(tmp_path / "a.pt") == _md5(tmp_path / "b.pt")
    df = pd.DataFrame({"sample_id": ["a", "b"], "score": [0.5, -1.0]})
    write_parquet(tmp_path / "a.parquet", df)
    write_parquet(tmp_path / "b.parquet", df)
    assert _md5(tmp_path / "a.parquet") == _md5(tmp_path / "b.parquet")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_json_rounding_and_non_finite(tmp_path):
    write_json(tmp_path / "m.json", {"a": 0.123456, "b": float("nan"), "c": [np.float64(1.23456789)], "n": np.int64(3)})
    assert (tmp_path / "m.json").read_text().split() == ["{", '"a":', "0.1235,", '"b":', "null,", '"c":', "[", "1.2346", "],", '"n":', "3", "}"]
    assert round_floats({"x": float("inf")}) == {"x": None}


def test_hash_ids_is_order_independent():
    assert hash_ids(["b", "a"]) == hash_ids(["a", "b"]) != hash_ids(["a"])


def _png_size_and_text(path):
    """(width, height) from IHDR and the tEXt chunks' keywords of a PNG file."""
    import struct

    data, i, size, keys = path.read_bytes(), 8, None, []
    while i < len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        kind, body = data[i + 4:i + 8], data[i + 8:i + 8 + n]
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"tEXt":
            keys.append(body.split(b"\0")[0].decode())
        i += 12 + n
    return size, keys


def test_save_png_is_reproducible_and_closes_the_figure(tmp_path):
    """One saver for every figure: no "Software" tag (it names matplotlib's version), the same
    bytes for the same drawing, dpi and bbox_inches per figure, the figure closed, no temp file left."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sampleval.io import save_png

    def draw():
        fig, ax = plt.subplots(figsize=(2, 1))
        ax.plot([0, 1], [1, 0])
        return fig

    fig = draw()
    save_png(fig, tmp_path / "a.png")
    assert not plt.fignum_exists(fig.number)
    save_png(draw(), tmp_path / "b.png")
    save_png(draw(), tmp_path / "full.png", bbox_inches=None)
    save_png(draw(), tmp_path / "dpi100.png", dpi=100, bbox_inches=None)
    assert _md5(tmp_path / "a.png") == _md5(tmp_path / "b.png")
    size, keys = _png_size_and_text(tmp_path / "a.png")
    assert "Software" not in keys
    assert _png_size_and_text(tmp_path / "full.png")[0] == (220, 110)  # 2 x 1 inches at the default 110 dpi, not cropped
    assert _png_size_and_text(tmp_path / "dpi100.png")[0] == (200, 100)
    assert size != (220, 110)  # bbox_inches="tight" (the default) crops
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "dpi100.png", "full.png"]
