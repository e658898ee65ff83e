import json
from dataclasses import replace

import numpy as np
import pytest

from sampleval.config import ParamsError
from sampleval.data.prepared import DataError, load_prepared
from sampleval.data.prepare import prepare_dataset
from typed_params import data_params, noise_params

DATA = data_params(source="digits", root=None, val_fraction=0.15, test_fraction=0.2, limit=None, image_size=8,
                   on_bad_image="fail", uncertainty="ones", frontal_only=True)
NOISE = noise_params(kind="pairwise", rate=0.4, pairs=[[9, 4]], splits=["train"])


def test_digits_prepared_contract(tmp_path):
    manifest = prepare_dataset(DATA, NOISE, 0, tmp_path)
    prep = load_prepared(tmp_path)
    t = prep.table
    assert len(t) == 1797 and prep.images.shape == (1797, 1, 8, 8) and prep.images.dtype == np.uint8
    assert manifest["n_samples"] == {s: int((t["split"] == s).sum()) for s in ("train", "val", "test")}
    assert manifest["n_samples"]["test"] == 360
    # noise only in train, exactly 40 % of training 9s, all to 4
    assert not t.loc[t["split"] != "train", "flipped"].any()
    n9 = int(((t["split"] == "train") & (t["clean_label"] == 9)).sum())
    assert manifest["n_flipped"]["train"] == round(0.4 * n9)
    f = t[t["flipped"]]
    assert (f["clean_label"] == 9).all() and (f["label"] == 4).all()
    assert (t.loc[~t["flipped"], "label"] == t.loc[~t["flipped"], "clean_label"]).all()
    # class balance of the stratified split
    assert abs(manifest["class_counts"]["test"]["0"] - 36) <= 1
    assert json.loads((tmp_path / "manifest.json").read_text())["content_sha256"] == manifest["content_sha256"]


def test_same_params_same_content_and_val_noise_when_asked(tmp_path):
    a = prepare_dataset(DATA, NOISE, 0, tmp_path / "a")
    b = prepare_dataset(DATA, NOISE, 0, tmp_path / "b")
    assert a["content_sha256"] == b["content_sha256"]
    c = prepare_dataset(DATA, replace(NOISE, splits=["train", "val"]), 0, tmp_path / "c")
    assert c["n_flipped"]["val"] > 0 and c["n_flipped"]["test"] == 0


def test_resize_and_limit(tmp_path):
    m = prepare_dataset(replace(DATA, image_size=32, limit=500), NOISE, 0, tmp_path)
    assert m["image_shape"] == [1, 32, 32]
    assert sum(m["n_samples"].values()) == 500


def test_errors(tmp_path):
    with pytest.raises(DataError, match="dvc repro prepare"):
        load_prepared(tmp_path / "missing")
    with pytest.raises(ParamsError, match="data.root"):
        prepare_dataset(replace(DATA, source="nih14"), replace(NOISE, kind="none"), 0, tmp_path)
