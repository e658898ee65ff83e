"""NIH ChestXray14 and CheXpert sources: labels, patient-wise splits, image cache, bad images."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from xray_fixtures import (  # noqa: E402
    CHEXPERT_CSV,
    NIH_CSV,
    chexpert_frame,
    make_chexpert_root,
    make_nih_root,
    nih_frame,
    official_test_patients,
)

from sampleval.data import images  # noqa: E402
from sampleval.data.prepared import DataError, labels_array  # noqa: E402
from sampleval.data.xray import (  # noqa: E402
    CHEXPERT_OBSERVATIONS,
    NIH14_FINDINGS,
    load_chexpert,
    load_nih14,
    parse_nih14_labels,
    read_chexpert_csv,
    read_nih14_csv,
)

SIZE = 20
P2_FRONTAL = "CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg"
P1_FRONTAL = "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"


def direct_decode(path: Path, size: int = SIZE) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("L").resize((size, size), Image.Resampling.BILINEAR))


@pytest.fixture
def decode_count(monkeypatch):
    """Counts calls to the single-image decoder."""
    calls = []
    real = images._decode_image

    def counting(path, size):
        calls.append(Path(path).name)
        return real(path, size)

    monkeypatch.setattr(images, "_decode_image", counting)
    return calls


@pytest.fixture(scope="module")
def nih_root(tmp_path_factory):
    return make_nih_root(tmp_path_factory.mktemp("nih"))


@pytest.fixture(scope="module")
def nih_official_root(tmp_path_factory):
    return make_nih_root(tmp_path_factory.mktemp("nih_official"), official_lists=True)


@pytest.fixture(scope="module")
def chexpert_root(tmp_path_factory):
    return make_chexpert_root(tmp_path_factory.mktemp("chexpert"))


def nih(root, **kw):
    args = dict(image_size=SIZE, val_fraction=0.2, test_fraction=0.2, seed=0)
    args.update(kw)
    return load_nih14(root, **args)


def chex(root, **kw):
    args = dict(image_size=SIZE, val_fraction=0.2, test_fraction=0.2, seed=0)
    args.update(kw)
    return load_chexpert(root, **args)


def assert_patient_disjoint(table: pd.DataFrame) -> None:
    per_patient = table.groupby("patient_id")["split"].nunique()
    assert (per_patient == 1).all(), per_patient[per_patient > 1]


# ----------------------------------------------------------------------------- labels


def test_class_lists():
    assert len(NIH14_FINDINGS) == 14 and NIH14_FINDINGS[0] == "Atelectasis" and NIH14_FINDINGS[-1] == "Hernia"
    assert CHEXPERT_OBSERVATIONS == list(pd.read_csv(CHEXPERT_CSV, nrows=0).columns[5:])


def test_parse_nih14_labels_no_finding_and_multi_finding():
    y = parse_nih14_labels(pd.Series(["No Finding", "Cardiomegaly|Emphysema", "Effusion|Infiltration|Nodule", "Hernia"]))
    assert y.dtype == np.int8 and y.shape == (4, 14)
    assert y[0].sum() == 0
    assert np.flatnonzero(y[1]).tolist() == [NIH14_FINDINGS.index("Cardiomegaly"), NIH14_FINDINGS.index("Emphysema")]
    assert np.flatnonzero(y[2]).tolist() == [2, 3, 5]
    assert np.flatnonzero(y[3]).tolist() == [13]


def test_parse_nih14_labels_on_the_real_rows():
    frame = nih_frame()
    y = parse_nih14_labels(frame["Finding Labels"])
    n_names = frame["Finding Labels"].str.split("|").map(len)
    no_finding = frame["Finding Labels"] == "No Finding"
    assert (y[no_finding.to_numpy()].sum(axis=1) == 0).all()
    assert (y[~no_finding.to_numpy()].sum(axis=1) == n_names[~no_finding]).all()
    assert y.sum(axis=0).min() >= 1  # every finding occurs in the fixture


def test_parse_nih14_labels_unknown_finding_raises():
    with pytest.raises(DataError, match="Pneumonitis"):
        parse_nih14_labels(pd.Series(["Effusion", "Effusion|Pneumonitis"]))


def test_read_nih14_csv_missing_column_names_file_columns_and_fix(tmp_path):
    path = tmp_path / "Data_Entry.csv"
    nih_frame().drop(columns=["Patient ID", "Finding Labels"]).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        read_nih14_csv(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg and "'Patient ID'" in msg and "'Finding Labels'" in msg and "Data_Entry_2017_v2020.csv" in msg


def test_read_nih14_csv_patient_ids_match_file_names():
    frame = read_nih14_csv(NIH_CSV)
    assert (frame["patient_id"] == frame["Image Index"].str[:8]).all()


# ----------------------------------------------------------------------------- CheXpert labels


def _row(frame, labels, path):
    return labels[frame.index[frame["Path"] == path][0]].tolist()


def test_chexpert_uncertainty_policies_on_real_rows():
    #              NoF ECM Card LOp LLe Ede Con Pna Ate Ptx PEf POt Fra SD
    ones = [0, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0]
    zeros = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    mask = [1, 1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 1]
    f, y, m = read_chexpert_csv(CHEXPERT_CSV, "ones", frontal_only=False)
    assert y.dtype == np.int8 and _row(f, y, P2_FRONTAL) == ones and _row(f, m, P2_FRONTAL) == [1] * 14
    f, y, m = read_chexpert_csv(CHEXPERT_CSV, "zeros", frontal_only=False)
    assert _row(f, y, P2_FRONTAL) == zeros and _row(f, m, P2_FRONTAL) == [1] * 14
    f, y, m = read_chexpert_csv(CHEXPERT_CSV, "ignore", frontal_only=False)
    assert _row(f, y, P2_FRONTAL) == zeros and _row(f, m, P2_FRONTAL) == mask
    # explicit 1.0 / 0.0 and blanks, no uncertainty: No Finding=1, Pneumothorax=0, Support Devices=1
    assert _row(f, y, P1_FRONTAL) == [1] + [0] * 12 + [1] and _row(f, m, P1_FRONTAL) == [1] * 14


def test_chexpert_mask_zero_exactly_where_uncertain():
    raw = chexpert_frame()[CHEXPERT_OBSERVATIONS].to_numpy()
    _, y, m = read_chexpert_csv(CHEXPERT_CSV, "ignore", frontal_only=False)
    assert ((m == 0) == (raw == -1)).all() and (raw == -1).sum() > 50
    assert (y[raw == -1] == 0).all() and (y == (raw == 1)).all()


def test_chexpert_bad_policy_and_bad_value(tmp_path):
    with pytest.raises(DataError, match="ones, zeros, ignore"):
        read_chexpert_csv(CHEXPERT_CSV, "maybe", frontal_only=True)
    frame = chexpert_frame()
    frame.loc[3, "Edema"] = 2.0
    frame.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(DataError, match="Edema"):
        read_chexpert_csv(tmp_path / "train.csv", "ones", frontal_only=False)


def test_chexpert_frontal_only_and_patient_ids():
    frame = chexpert_frame()
    n_frontal = int((frame["Frontal/Lateral"] == "Frontal").sum())
    f, y, _ = read_chexpert_csv(CHEXPERT_CSV, "ones", frontal_only=True)
    assert len(f) == len(y) == n_frontal < len(frame)
    assert not f["Path"].str.contains("lateral").any()
    f_all, _, _ = read_chexpert_csv(CHEXPERT_CSV, "ones", frontal_only=False)
    assert len(f_all) == len(frame) and f_all["Path"].str.contains("lateral").any()
    assert f_all.loc[f_all["Path"] == P2_FRONTAL, "patient_id"].item() == "patient00002"


def test_chexpert_missing_column(tmp_path):
    chexpert_frame().drop(columns=["Frontal/Lateral"]).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(DataError, match=r"train\.csv is missing column\(s\) 'Frontal/Lateral'"):
        read_chexpert_csv(tmp_path / "train.csv", "ones", frontal_only=True)


# ----------------------------------------------------------------------------- NIH loader and splits


def test_load_nih14_table_labels_and_random_patient_split(nih_root):
    data = nih(nih_root)
    t = data.table
    assert list(t.columns) == ["sample_id", "label", "patient_id", "split"]
    assert data.classes == NIH14_FINDINGS and data.skipped == [] and data.task == "multilabel"
    assert data.images.shape == (len(t), 1, SIZE, SIZE) and data.images.dtype == np.uint8
    assert len(t) == len(nih_frame())
    assert_patient_disjoint(t)
    share = t["split"].value_counts(normalize=True)
    assert set(share.index) == {"train", "val", "test"} and 0.08 < share["test"] < 0.35 and 0.08 < share["val"] < 0.35
    expected = dict(zip(nih_frame()["Image Index"], parse_nih14_labels(nih_frame()["Finding Labels"])))
    for sid, label in zip(t["sample_id"], t["label"]):
        assert label.dtype == np.int8 and np.array_equal(label, expected[sid])
    assert labels_array(t["label"], "multilabel").shape == (len(t), 14)


def test_load_nih14_split_is_seeded(nih_root):
    a, b, c = nih(nih_root, seed=3).table, nih(nih_root, seed=3).table, nih(nih_root, seed=4).table
    assert (a["split"] == b["split"]).all() and not (a["split"] == c["split"]).all()


def test_load_nih14_honours_official_test_list(nih_official_root):
    data = nih(nih_official_root, test_fraction=0.5)  # test_fraction unused with official lists
    t = data.table
    listed = set((nih_official_root / "test_list.txt").read_text().split())
    assert set(t.loc[t["split"] == "test", "sample_id"]) == listed
    test_pids = {f"{p:08d}" for p in official_test_patients(nih_frame())}
    assert set(t.loc[t["split"] == "test", "patient_id"]) == test_pids
    assert_patient_disjoint(t)
    rest = t[t["split"] != "test"]
    assert 0.08 < (rest["split"] == "val").mean() < 0.35


def test_official_list_splitting_a_patient_is_rejected(tmp_path):
    root = make_nih_root(tmp_path, official_lists=True)
    lines = (root / "test_list.txt").read_text().split()
    (root / "test_list.txt").write_text("\n".join(lines + ["00000003_001.png"]))  # patient 3 (5 images) is train_val
    with pytest.raises(DataError, match="00000003"):
        nih(root)


@pytest.mark.parametrize("csv_name", ["Data_Entry.csv", "Data_Entry_2017_v2020.csv.gz"])
def test_nih_csv_names(tmp_path, csv_name):
    root = make_nih_root(tmp_path, csv_name=csv_name)
    assert len(nih(root, limit=20).table) >= 20


def test_nih_kaggle_image_folders(tmp_path):
    root = make_nih_root(tmp_path)
    names = sorted(p.name for p in (root / "images").iterdir())
    for k, name in enumerate(names):
        part = root / f"images_{1 + k % 2:03d}" / "images"
        part.mkdir(parents=True, exist_ok=True)
        (root / "images" / name).rename(part / name)
    (root / "images").rmdir()
    data = nih(root)
    assert data.skipped == [] and len(data.table) == len(names)
    sid = data.table["sample_id"].iloc[1]
    assert np.array_equal(data.images[1, 0], direct_decode(root / "images_002" / "images" / sid))


def test_split_fractions_are_validated(nih_root, nih_official_root):
    with pytest.raises(DataError, match="val_fraction and test_fraction"):
        nih(nih_root, val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(DataError, match="val_fraction must be"):
        nih(nih_official_root, val_fraction=0.0)


def test_nih_missing_root_and_csv(tmp_path):
    with pytest.raises(DataError, match=r"does not exist.*Data_Entry\.csv"):
        nih(tmp_path / "nowhere")
    with pytest.raises(DataError) as err:
        nih(tmp_path)
    assert f"data.root={tmp_path} has no Data_Entry.csv" in str(err.value)
    assert f"{tmp_path}/images/" in str(err.value)


def test_limit_keeps_whole_patients(nih_root):
    per_patient = nih_frame().groupby("Patient ID").size()
    per_patient.index = [f"{p:08d}" for p in per_patient.index]
    a = nih(nih_root, limit=60).table
    b = nih(nih_root, limit=60).table
    assert a["sample_id"].tolist() == b["sample_id"].tolist()
    counts = a.groupby("patient_id").size()
    assert (counts == per_patient[counts.index]).all()
    assert 60 <= len(a) < 60 + per_patient.max()
    assert_patient_disjoint(a)


# ----------------------------------------------------------------------------- images and cache


def test_cache_round_trip_and_reuse(tmp_path, nih_root, decode_count):
    cache = tmp_path / "cache"
    first = nih(nih_root, cache_dir=cache)
    assert len(decode_count) == len(first.table)
    assert (cache / f"images_{SIZE}.npy").is_file() and (cache / "index.parquet").is_file()
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]
    for i, sid in enumerate(first.table["sample_id"]):
        assert np.array_equal(first.images[i, 0], direct_decode(nih_root / "images" / sid)), sid

    decode_count.clear()
    second = nih(nih_root, cache_dir=cache)
    assert decode_count == []
    assert isinstance(second.images, np.memmap)
    assert np.array_equal(np.asarray(second.images), np.asarray(first.images))

    subset = nih(nih_root, cache_dir=cache, limit=50)  # a subset of cached files: no decoding either
    assert decode_count == []
    rows = first.table.reset_index().set_index("sample_id").loc[subset.table["sample_id"], "index"].to_numpy()
    assert np.array_equal(subset.images, np.asarray(first.images)[rows])

    nih(nih_root, cache_dir=cache, image_size=12)  # another size: its own file, decoded once
    assert len(decode_count) == len(first.table) and (cache / "images_12.npy").is_file()
    decode_count.clear()
    nih(nih_root, cache_dir=cache)
    nih(nih_root, cache_dir=cache, image_size=12)
    assert decode_count == []


def test_cache_decodes_a_changed_file_again(tmp_path, decode_count):
    root = make_nih_root(tmp_path / "nih")
    cache = tmp_path / "cache"
    nih(root, cache_dir=cache)
    changed = root / "images" / "00000005_000.png"
    Image.fromarray(np.full((64, 64), 77, np.uint8)).save(changed)
    os.utime(changed, ns=(1_000_000_000, 1_000_000_000))
    decode_count.clear()
    data = nih(root, cache_dir=cache)
    assert decode_count == ["00000005_000.png"]
    i = data.table.index[data.table["sample_id"] == "00000005_000.png"][0]
    assert (data.images[i] == 77).all()


def test_cache_ignores_an_index_that_does_not_match_its_npy(tmp_path, nih_root, decode_count):
    cache = tmp_path / "cache"
    nih(nih_root, cache_dir=cache, limit=30)
    np.save(cache / f"images_{SIZE}.npy", np.zeros((3, 1, SIZE, SIZE), np.uint8))  # e.g. an interrupted rewrite
    decode_count.clear()
    data = nih(nih_root, cache_dir=cache, limit=30)
    assert len(decode_count) == len(data.table)
    sid = data.table["sample_id"].iloc[-1]
    assert np.array_equal(data.images[-1, 0], direct_decode(nih_root / "images" / sid))


def test_no_cache_dir_decodes_in_memory(nih_root, decode_count):
    data = nih(nih_root, limit=40)
    assert len(decode_count) == len(data.table) and not isinstance(data.images, np.memmap)
    sid = data.table["sample_id"].iloc[7]
    assert np.array_equal(data.images[7, 0], direct_decode(nih_root / "images" / sid))


MISSING = "00000003_001.png"
CORRUPT = "00000011_005.png"
TRUNCATED = "00000030_000.png"


def test_missing_image_fail_names_file_and_option(tmp_path):
    root = make_nih_root(tmp_path, missing=[MISSING])
    with pytest.raises(DataError) as err:
        nih(root)
    assert MISSING in str(err.value) and "data.on_bad_image: skip" in str(err.value)


def test_corrupt_image_fail_names_file_and_caches_the_rest(tmp_path, decode_count):
    root = make_nih_root(tmp_path / "nih", corrupt=[CORRUPT])
    with pytest.raises(DataError) as err:
        nih(root, cache_dir=tmp_path / "cache")
    assert CORRUPT in str(err.value) and "data.on_bad_image: skip" in str(err.value)
    decode_count.clear()
    data = nih(root, cache_dir=tmp_path / "cache", on_bad_image="skip")
    assert decode_count == []  # the good images were cached, the bad one is known bad
    assert data.skipped == [CORRUPT] and len(data.table) == len(data.images) == len(nih_frame()) - 1
    with pytest.raises(DataError, match=CORRUPT):  # still fails without decoding again
        nih(root, cache_dir=tmp_path / "cache")
    assert decode_count == []
    Image.fromarray(np.full((32, 32), 9, np.uint8)).save(root / "images" / CORRUPT)  # repaired: decoded once
    data = nih(root, cache_dir=tmp_path / "cache")
    assert decode_count == [CORRUPT] and data.skipped == []
    assert (data.images[int(np.flatnonzero(data.table["sample_id"] == CORRUPT)[0])] == 9).all()


@pytest.mark.parametrize("use_cache", [False, True])
def test_bad_images_skipped_and_listed(tmp_path, use_cache):
    root = make_nih_root(tmp_path / "nih", missing=[MISSING], corrupt=[CORRUPT], truncated=[TRUNCATED])
    data = nih(root, on_bad_image="skip", cache_dir=tmp_path / "cache" if use_cache else None)
    assert sorted(data.skipped) == sorted([MISSING, CORRUPT, TRUNCATED])
    t = data.table
    assert not t["sample_id"].isin(data.skipped).any()
    assert len(t) == len(nih_frame()) - 3 == len(data.images)
    for i in range(0, len(t), 13):  # images stay aligned with the table after the gaps
        assert np.array_equal(data.images[i, 0], direct_decode(root / "images" / t["sample_id"].iloc[i]))
    assert_patient_disjoint(t)


def test_bad_image_option_is_validated(nih_root):
    with pytest.raises(DataError, match="on_bad_image"):
        nih(nih_root, on_bad_image="ignore", limit=10)


# ----------------------------------------------------------------------------- CheXpert loader


def test_load_chexpert_ignore_policy_table(chexpert_root, decode_count):
    data = chex(chexpert_root, uncertainty="ignore", frontal_only=True)
    t = data.table
    assert list(t.columns) == ["sample_id", "label", "patient_id", "split", "label_mask"]
    assert data.classes == CHEXPERT_OBSERVATIONS
    frame = chexpert_frame()
    assert len(t) == int((frame["Frontal/Lateral"] == "Frontal").sum()) == len(data.images) == len(decode_count)
    row = t.set_index("sample_id").loc[P2_FRONTAL]
    assert row["label_mask"].tolist() == [1, 1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 1]
    assert row["patient_id"] == "patient00002"
    assert_patient_disjoint(t)
    assert set(t["split"]) == {"train", "val", "test"}
    i = int(np.flatnonzero(t["sample_id"] == P2_FRONTAL)[0])
    assert np.array_equal(data.images[i, 0], direct_decode(chexpert_root.parent / P2_FRONTAL))


def test_load_chexpert_from_parent_dir_with_laterals(chexpert_root):
    data = chex(chexpert_root.parent, uncertainty="ones", frontal_only=False, limit=40)
    t = data.table
    assert "label_mask" not in t.columns
    assert t["sample_id"].str.contains("lateral").any()
    counts = t.groupby("patient_id").size()
    full = chexpert_frame()["Path"].str.extract(r"(patient\d+)")[0].value_counts()
    assert (counts == full[counts.index]).all() and len(t) >= 40
    assert_patient_disjoint(t)


def test_chexpert_bad_images_skip_and_fail(tmp_path):
    root = make_chexpert_root(tmp_path, missing=[P1_FRONTAL], corrupt=[P2_FRONTAL])
    with pytest.raises(DataError, match="patient00001"):
        chex(root)
    data = chex(root, on_bad_image="skip")
    assert sorted(data.skipped) == [P1_FRONTAL, P2_FRONTAL]
    assert len(data.table) == len(data.images)


def test_chexpert_missing_root_and_csv(tmp_path):
    with pytest.raises(DataError, match=r"has no train\.csv; put CheXpert"):
        chex(tmp_path)


def test_table_survives_parquet(tmp_path, chexpert_root):
    data = chex(chexpert_root, uncertainty="ignore", limit=20)
    data.table.to_parquet(tmp_path / "t.parquet", index=False)
    back = pd.read_parquet(tmp_path / "t.parquet")
    assert np.array_equal(labels_array(back["label"], "multilabel"), labels_array(data.table["label"], "multilabel"))
    assert np.asarray(back["label"].iloc[0]).dtype == np.int8
    assert np.asarray(back["label_mask"].iloc[0]).dtype == np.int8
