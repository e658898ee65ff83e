"""Own data as first-class sources (issue 13): table, imagefolder, manifest; models that fit them."""
import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sampleval.config import Params, ParamsError, load_params, typed
from sampleval.data.settings import DataParams, NoiseParams
from sampleval.schema import from_params
from typed_params import noise_params
from sampleval.data.prepared import DataError, load_prepared
from sampleval.data.prepare import prepare_dataset
from sources_fixtures import CLASSES, make_imagefolder, make_manifest, make_table, write_image

ROOT = Path(__file__).resolve().parents[1]
BASE = load_params(ROOT / "params.yaml")
NO_NOISE = NoiseParams(kind="none", rate=0.0, pairs=[], splits=["train"])


def params(source: str, model: str | None = None, **data) -> Params:
    p = copy.deepcopy(BASE)
    p["data"].update(source=source, **data)
    p["model"]["name"] = model or ("logistic" if source == "table" else "small_cnn")
    if source in ("imagefolder", "manifest"):
        p["data"]["image_size"] = data.get("image_size")
    if data.get("label_separator") or data.get("finding_columns"):
        p["subsets"]["variants"] = ["global"]
    return typed(p)


def prepare(p: Params, tmp_path: Path, noise: NoiseParams = NO_NOISE, monkeypatch=None) -> tuple[dict, object]:
    manifest = prepare_dataset(p.data, noise, p.seed, tmp_path / "prepared")
    return manifest, load_prepared(tmp_path / "prepared")


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the decode cache (data/cache/<source>) lands in the test's folder


# ---------------------------------------------------------------- table


def test_wine_table_features_standardised_on_train_only(tmp_path):
    p = params("table", file="sklearn:wine")
    noise = NoiseParams(kind="pairwise", rate=0.3, pairs=[[1, 2]], splits=["train"])
    manifest, prep = prepare(p, tmp_path, noise)
    assert prep.images.dtype == np.float32 and prep.images.shape == (178, 13, 1, 1)
    assert manifest["classes"] == ["class_0", "class_1", "class_2"] and manifest["source"] == "table"
    assert sum(manifest["class_counts"]["train"].values()) == manifest["n_samples"]["train"]
    assert manifest["n_flipped"]["train"] > 0 and manifest["n_flipped"]["test"] == 0
    tr, va = prep.split("train"), prep.split("val")
    x = tr.x.reshape(len(tr.x), -1).astype(np.float64)
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(0), 1, atol=1e-4)
    assert np.abs(va.x.reshape(len(va.x), -1).mean(0)).max() > 1e-3  # val is transformed, not refitted
    assert manifest["encoding"]["numeric"]["alcohol"]["std"] > 0


def test_table_limit_keeps_every_class(tmp_path):
    manifest, prep = prepare(params("table", file="sklearn:breast_cancer", limit=100), tmp_path)
    assert sum(manifest["n_samples"].values()) == 100
    assert all(v > 0 for split in manifest["class_counts"].values() for v in split.values())


def test_csv_and_parquet_tables_one_hot(tmp_path):
    for name in ("t.csv", "t.parquet"):
        path = make_table(tmp_path / name)
        manifest, prep = prepare(params("table", file=str(path)), tmp_path / name.replace(".", "_"))
        assert manifest["features"][:2] == ["age", "income"]
        assert [f for f in manifest["features"] if f.startswith("city=")] == ["city=east", "city=north", "city=south", "city=west"]
        onehot = prep.images.reshape(len(prep.images), -1)[:, 2:]
        assert set(np.unique(onehot)) <= {0.0, 1.0} and (onehot.sum(1) <= 1).all()
        assert manifest["classes"] == ["high", "low", "mid"]


def test_unseen_category_encodes_as_zeros():
    from sampleval.data.table import TableEncoder

    enc = TableEncoder(["a"], ["c"]).fit(pd.DataFrame({"a": [1.0, 2.0, 3.0], "c": ["x", "y", "x"]}))
    out = enc.transform(pd.DataFrame({"a": [2.0], "c": ["z"]}))
    np.testing.assert_allclose(out, [[0.0, 0.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.drop(columns="label"), "column(s) 'label' not found"),
    (lambda f: f.assign(age=f["age"].astype(str).where(f.index != 5, "forty")), "feature column 'age' is numeric but row 5 holds 'forty'"),
    (lambda f: f.assign(age=f["age"].where(f.index != 3, np.nan)), "feature column 'age' has a missing value at row 3"),
    (lambda f: f.assign(label="low"), "has a single class"),
])
def test_bad_tables_fail_in_one_line_naming_the_file(tmp_path, edit, message):
    path = make_table(tmp_path / "t.csv")
    edit(pd.read_csv(path)).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        prepare(params("table", file=str(path)), tmp_path)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_table_file_and_unknown_embedded_name(tmp_path):
    with pytest.raises(DataError, match="table file not found; set data.file"):
        prepare(params("table", file=str(tmp_path / "nope.csv")), tmp_path)
    with pytest.raises(DataError, match="unknown embedded table"):
        prepare(params("table", file="sklearn:iris"), tmp_path)


# ---------------------------------------------------------------- imagefolder


def test_imagefolder_grayscale_size_and_channels_from_the_data(tmp_path):
    root = make_imagefolder(tmp_path / "folder", n_per_class=12, size=16)
    manifest, prep = prepare(params("imagefolder", root=str(root)), tmp_path)
    assert prep.images.dtype == np.uint8 and prep.images.shape[1:] == (1, 16, 16)
    assert manifest["class_index"] == {"cat": 0, "dog": 1, "fox": 2} and manifest["classes"] == list(CLASSES)
    assert all(n == 12 for n in np.sum([list(s.values()) for s in manifest["class_counts"].values()], axis=0))
    tr = prep.split("train")
    assert all(sid.split("/")[0] == CLASSES[y] for sid, y in zip(tr.ids, tr.y))  # label = folder


def test_imagefolder_rgb_fixed_splits_and_resize(tmp_path):
    root = make_imagefolder(tmp_path / "folder", n_per_class=10, size=20, rgb=True, fixed=True)
    manifest, prep = prepare(params("imagefolder", root=str(root), image_size=12), tmp_path)
    assert prep.images.shape[1:] == (3, 12, 12) and manifest["channels"] == 3
    table = prep.table
    assert (table["sample_id"].str.split("/").str[0] == table["split"]).all()  # the folders' splits kept
    assert manifest["n_samples"] == {"train": 18, "val": 6, "test": 6}


def test_imagefolder_without_val_carves_it_from_train(tmp_path):
    root = make_imagefolder(tmp_path / "folder", n_per_class=10, fixed=True)
    for f in (root / "val").rglob("*.png"):
        f.rename(root / "train" / f.parent.name / f.name)
    for d in sorted((root / "val").glob("*")):
        d.rmdir()
    (root / "val").rmdir()
    manifest, prep = prepare(params("imagefolder", root=str(root)), tmp_path)
    assert manifest["n_samples"]["val"] > 0 and manifest["n_samples"]["test"] == 6
    assert prep.table.loc[prep.table["split"] == "val", "sample_id"].str.startswith("train/").all()


def test_imagefolder_bad_inputs(tmp_path):
    root = make_imagefolder(tmp_path / "a", n_per_class=6)
    (root / "empty").mkdir()
    with pytest.raises(DataError, match=r"a/empty: empty class .*add images or remove the folder"):
        prepare(params("imagefolder", root=str(root)), tmp_path)
    root = make_imagefolder(tmp_path / "b", n_per_class=10, fixed=True)
    write_image(root / "test" / "wolf" / "w.png", 0, np.random.default_rng(0))
    with pytest.raises(DataError, match=r"test: unknown class 'wolf' \(not in .*train\)"):
        prepare(params("imagefolder", root=str(root)), tmp_path)
    root = make_imagefolder(tmp_path / "c", n_per_class=10)
    (root / "cat" / "cat-000.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"unreadable image file\(s\): .*cat-000.png.*on_bad_image: skip"):
        prepare(params("imagefolder", root=str(root)), tmp_path)
    manifest, _ = prepare(params("imagefolder", root=str(root), on_bad_image="skip"), tmp_path)
    assert manifest["skipped"] == ["cat/cat-000.png"]
    write_image(root / "dog" / "big.png", 1, np.random.default_rng(0), size=24)
    with pytest.raises(DataError, match="do not share one square size .*set data.image_size"):
        prepare(params("imagefolder", root=str(root), on_bad_image="skip"), tmp_path)


# ---------------------------------------------------------------- manifest


def test_manifest_multiclass(tmp_path):
    csv = make_manifest(tmp_path / "m", n=45)
    manifest, prep = prepare(params("manifest", file=str(csv)), tmp_path)
    assert prep.n_classes == 3 and manifest["task"] == "multiclass" and prep.images.shape[1:] == (1, 16, 16)
    assert set(prep.table["sample_id"]) == set(pd.read_csv(csv)["path"])


@pytest.mark.parametrize("style", ["separator", "columns"])
def test_manifest_multilabel_with_groups_is_groupwise(tmp_path, style):
    csv = make_manifest(tmp_path / "m", n=90, multilabel=True, groups=True, style=style)
    extra = {"label_separator": "|"} if style == "separator" else {"finding_columns": list(CLASSES)}
    p = params("manifest", file=str(csv), group_column="patient", **extra)
    manifest, prep = prepare(p, tmp_path)
    assert manifest["task"] == "multilabel" and manifest["classes"] == list(CLASSES)
    t = prep.table
    by_split = {s: set(t.loc[t["split"] == s, "patient_id"]) for s in ("train", "val", "test")}
    assert all(by_split[a].isdisjoint(by_split[b]) for a, b in [("train", "val"), ("train", "test"), ("val", "test")])
    assert manifest["groups"]["train"] == len(by_split["train"])
    y = prep.split("train").y
    assert y.shape[1] == 3 and y.sum() > len(y)  # some rows carry two findings
    if style == "separator":
        raw = pd.read_csv(csv, keep_default_na=False).set_index("path")
        assert all((row.sum() == 0) == (raw.loc[sid, "label"] == "") for sid, row in zip(prep.split("train").ids, y))


def test_multilabel_manifest_refuses_noise_and_stratified_variant(tmp_path):
    csv = make_manifest(tmp_path / "m", n=30, multilabel=True)
    p = copy.deepcopy(BASE)
    p["data"].update(source="manifest", file=str(csv), label_separator="|", image_size=None)
    with pytest.raises(ParamsError, match="'subsets.variants' may include 'stratified' only for multi-class"):
        typed(p)
    with pytest.raises(ParamsError, match="'noise.kind' must be none for multi-label"):
        prepare_dataset(from_params(DataParams, p["data"]), noise_params(), 0, tmp_path / "prepared")


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.drop(columns="label"), "missing column(s) 'label'"),
    (lambda f: f.assign(path=f["path"].where(f.index != 2, "../outside.png")), "row 2 path '../outside.png' is outside data.root"),
    (lambda f: f.assign(label=f["label"].where(f.index != 4, "")), "label column 'label' is empty at row 4"),
    (lambda f: pd.concat([f, f.iloc[:1]]), "appears twice"),
])
def test_bad_manifests_fail_in_one_line_naming_the_file(tmp_path, edit, message):
    csv = make_manifest(tmp_path / "m", n=30)
    edit(pd.read_csv(csv)).to_csv(csv, index=False)
    with pytest.raises(DataError) as err:
        prepare(params("manifest", file=str(csv)), tmp_path)
    assert message in str(err.value) and str(csv) in str(err.value) and "\n" not in str(err.value)


def test_bad_finding_columns(tmp_path):
    csv = make_manifest(tmp_path / "m", n=30, multilabel=True, style="columns")
    frame = pd.read_csv(csv)
    frame.assign(dog=frame["dog"].astype(str).where(frame.index != 1, "yes")).to_csv(csv, index=False)
    p = params("manifest", file=str(csv), finding_columns=list(CLASSES))
    with pytest.raises(DataError, match=r"finding column 'dog' holds 'yes' at row 1; finding columns must be 0 or 1"):
        prepare(p, tmp_path)
    frame.assign(dog=0).to_csv(csv, index=False)
    with pytest.raises(DataError, match="empty class: finding column 'dog' has no positive row"):
        prepare(p, tmp_path)


def test_missing_image_in_manifest(tmp_path):
    csv = make_manifest(tmp_path / "m", n=30)
    (tmp_path / "m" / "images" / "0003.png").unlink()
    with pytest.raises(DataError, match=r"image file\(s\) not found: .*0003.png; restore the file\(s\) or set data.on_bad_image: skip"):
        prepare(params("manifest", file=str(csv), image_size=16), tmp_path)


# ---------------------------------------------------------------- params and models


def test_params_rules_for_own_data():
    with pytest.raises(ParamsError, match="'model.name' = small_cnn does not fit 'data.source' = table"):
        params("table", model="small_cnn", file="sklearn:wine")
    with pytest.raises(ParamsError, match="'data.file' is null but data.source = table"):
        params("table")
    with pytest.raises(ParamsError, match="'data.root' is null but data.source = imagefolder"):
        params("imagefolder")
    with pytest.raises(ParamsError, match="'data.image_size' may be null only for imagefolder/manifest"):
        p = copy.deepcopy(BASE)
        p["data"]["image_size"] = None
        typed(p)


@pytest.mark.parametrize("name", ["logistic", "mlp"])
def test_table_models(name):
    from sampleval.training.models import build_model, last_linear

    m = build_model(name, 13, 3, 1)
    assert m(torch.zeros(5, 13, 1, 1)).shape == (5, 3)
    assert last_linear(m).out_features == 3
    if name == "logistic":
        assert sum(p.numel() for p in m.parameters()) == 13 * 3 + 3


def test_to_float_scales_only_uint8():
    from sampleval.training.loop import to_float

    assert torch.equal(to_float(torch.tensor([0, 255], dtype=torch.uint8)), torch.tensor([-1.0, 1.0]))
    x = torch.tensor([-2.5, 3.0])
    assert torch.equal(to_float(x), x)


@pytest.mark.parametrize("name", ["resnet18", "densenet121"])
@pytest.mark.parametrize("channels", [1, 3])
def test_imagenet_models_take_grayscale_and_rgb_with_local_weights(tmp_path, name, channels):
    import torchvision

    from sampleval.training.models import build_model

    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None)
    path = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), path)
    model = build_model(name, channels, 4, 32, pretrained=str(path))
    assert model(torch.zeros(2, channels, 32, 32)).shape == (2, 4)
    first = next(k for k, v in reference.state_dict().items() if v.ndim == 4)
    assert torch.equal(model.net.state_dict()[first], reference.state_dict()[first])  # the file's weights, not random ones


def test_pretrained_grayscale_first_conv_and_wrong_file(tmp_path):
    from sampleval.training.models import build_model

    state = build_model("resnet18", 3, 1000, 32).net.state_dict()
    gray = dict(state, **{"conv1.weight": state["conv1.weight"].sum(1, keepdim=True)})
    torch.save(gray, tmp_path / "gray.pth")
    model = build_model("resnet18", 1, 2, 32, pretrained=str(tmp_path / "gray.pth"))
    torch.testing.assert_close(model.net.conv1.weight.sum(1, keepdim=True), gray["conv1.weight"])
    torch.save({"foo": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="none of its 1 tensors fits resnet18"):
        build_model("resnet18", 3, 2, 32, pretrained=str(tmp_path / "other.pth"))


def test_influence_estimators_run_unchanged_on_a_table(tmp_path):
    """Training, the influence context and exact influence functions on the logistic table model."""
    from sampleval.training.retrain import train_and_evaluate
    from sampleval.detection.cell import influence_context
    from sampleval.influence.runner import run_estimator
    from sampleval.training.loop import TrainConfig

    p = params("table", file="sklearn:wine")
    _, prep = prepare(p, tmp_path)
    cfg = TrainConfig.from_params(p)
    cfg.epochs, cfg.lr = 5, 0.05
    result, metrics = train_and_evaluate(prep, cfg, 0, ckpt_dir=tmp_path / "ck")
    assert metrics["test"]["accuracy"] > 0.5
    ctx = influence_context(prep, result, cfg, p.influence, 0)
    for method in ("tracin", "if_cg", "loss"):
        scores = run_estimator(method, ctx)[method]
        assert len(scores) == len(prep.split("train").y) and np.isfinite(scores).all()


def test_densenet_file_with_torchvisions_published_key_names(tmp_path):
    """torchvision's densenet121-a639ec97.pth says 'norm.1' where the module says 'norm1'; it must load fully."""
    import re

    import torchvision

    from sampleval.training.models import build_model

    ref = torchvision.models.densenet121(weights=None).state_dict()
    published = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))(\d)\.", r"\1.\2.", k): v for k, v in ref.items()}
    assert published.keys() != ref.keys()
    torch.save(published, tmp_path / "densenet121.pth")
    model = build_model("densenet121", 3, 2, 32, pretrained=str(tmp_path / "densenet121.pth"))
    key = "features.denseblock1.denselayer1.norm1.weight"
    assert torch.equal(model.net.state_dict()[key], ref[key])
