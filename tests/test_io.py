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
