"""Typed settings (sampleval/schema.py): every params key has one home, a section dataclass
field with its check and help; estimators and data sources are registered in one place each,
and one registered at run time is accepted by params validation and runs through the library."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sampleval.config import SCHEMA, Params, ParamsError, load, load_params, read_yaml, validate
from sampleval.data import sources
from sampleval.data.prepare import prepare_dataset
from sampleval.data.prepared import load_prepared
from sampleval.data.settings import DataParams
from sampleval.experiments.settings import RefineParams
from sampleval.influence import registry
from sampleval.schema import Defaulted, Spec, from_params, help_of

ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILES = [ROOT / "params.yaml", *sorted((ROOT / "presets").glob("*.yaml"))]


def _nested(spec):
    spec = spec() if callable(spec) else spec
    return spec.schema if isinstance(spec, Defaulted) else spec


def _undescribed(values: dict, schema: dict, helps: dict, prefix: str = "") -> list[str]:
    """Keys of ``values`` without a dataclass field and help text (estimator options: a field of
    the estimator's options dataclass, whose text says what is allowed)."""
    out = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        spec = _nested(schema.get(key)) if key in schema else None
        in_options = name.startswith("influence.options.")  # an estimator's entry and its options dataclass's fields
        if spec is None or (not in_options and not helps.get(name)) or (isinstance(spec, Spec) and not spec.allowed):
            out.append(name)
        elif isinstance(spec, dict):
            out += _undescribed(value, spec, helps, f"{name}.")
    return out


@pytest.mark.parametrize("path", PARAMS_FILES, ids=lambda p: p.name)
def test_every_params_key_is_a_dataclass_field_with_help(path):
    helps = help_of(Params)
    assert all(text.strip() for text in helps.values())
    assert _undescribed(read_yaml(path.read_text()), SCHEMA, helps) == []
    # the option keys are the options dataclasses' fields, nothing else
    for name, options in read_yaml(path.read_text())["influence"]["options"].items():
        assert set(options) == {f.name for f in dataclasses.fields(registry.get(name).options)}


def test_validated_params_build_the_typed_sections():
    params = load_params(ROOT / "params.yaml")
    p = load(ROOT / "params.yaml")  # what every stage receives (stages/_common.start)
    assert isinstance(p, Params) and isinstance(p.data, DataParams) and p.data.source == params["data"]["source"]
    assert p.detect.recommend.rule == params["detect"]["recommend"]["rule"]
    assert p.noise.kind == "pairwise" and params["noise"]["kind"] == "auto"  # resolved for the digits
    assert p.refine == from_params(RefineParams, params["refine"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.refine.rounds = 1


def test_errors_name_the_key_and_what_is_allowed():
    base = read_yaml((ROOT / "params.yaml").read_text())
    for section, key, value, allowed in [
        ("influence", "tracin_method", "exact", "one of central, jvp"),
        ("subsets", "variants", ["local"], "a list of distinct values from global, stratified"),
        ("detect", "recommend", {"rule": "vote"}, "one of best_mean, noise_structure"),
        ("data", "source", "webdataset", "one of digits, nih14, chexpert, table, imagefolder, manifest"),
        ("model", "name", "vit", "one of small_cnn, resnet18, densenet121, logistic, mlp"),
    ]:
        p = copy.deepcopy(base)
        p[section][key] = value
        name = f"{section}.{key}" + (".rule" if key == "recommend" else "")
        shown = value["rule"] if key == "recommend" else value
        with pytest.raises(ParamsError) as err:
            validate(p)
        assert str(err.value) == f"params: '{name}' = {shown!r} is not allowed; expected {allowed}"
    p = copy.deepcopy(base)
    p["stats"]["metrics"] = "accuracy"
    with pytest.raises(ParamsError, match=r"unknown key 'stats.metrics' \(allowed here: alpha, metric, n_bootstrap\)"):
        validate(p)
    del p["stats"]["metrics"], p["stats"]["alpha"]
    with pytest.raises(ParamsError, match="missing key 'stats.alpha'"):
        validate(p)


# --------------------------------------------------------------------------- a dummy estimator


@dataclasses.dataclass(frozen=True)
class DummyOptions:
    scale: float = registry.option(2.0, lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0, "a positive number")


def estimate_dummy(ctx) -> dict:
    """Minus the sample index, times the option: a signed score with a known value."""
    from sampleval.influence.core import n_samples

    n = n_samples(ctx.train)
    return {"dummy": -ctx.options_of("dummy").scale * np.arange(n, dtype=float)}


@pytest.fixture
def dummy_estimator(monkeypatch):
    monkeypatch.setitem(registry.ESTIMATORS, "dummy", registry.Estimator("dummy", f"{__name__}:estimate_dummy", registry.SIGNED, DummyOptions))


def _with_dummy(tmp_path, options: str | None) -> Path:
    text = (ROOT / "params.yaml").read_text()
    text = text.replace("  methods: [tracin,", "  methods: [dummy, tracin,").replace("  scores: [tracin,", "  scores: [dummy, tracin,")
    text = text.replace("  ranking: tracin       # estimator that ranks", "  ranking: dummy       # estimator that ranks")
    if options is not None:
        text = text.replace("    self_influence: {}\n", f"    self_influence: {{}}\n    dummy: {options}\n", 1)
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_an_estimator_registered_at_run_time_is_accepted_with_its_options(tmp_path, dummy_estimator):
    params = load(_with_dummy(tmp_path, "{scale: 3}"))
    assert "dummy" in params.influence.methods and "dummy" in params.subsets.scores and params.refine.ranking == "dummy"
    assert params.influence.options["dummy"] == {"scale": 3}
    # left out of params: its options dataclass's defaults
    assert load_params(_with_dummy(tmp_path, None))["influence"]["options"]["dummy"] == {"scale": 2.0}
    with pytest.raises(ParamsError, match=r"'influence.options.dummy.scale' = -1 is not allowed; expected a positive number"):
        load_params(_with_dummy(tmp_path, "{scale: -1}"))
    with pytest.raises(ParamsError, match=r"unknown key 'influence.options.dummy.size'"):
        load_params(_with_dummy(tmp_path, "{scale: 1, size: 2}"))


def test_an_unregistered_estimator_is_refused(tmp_path):
    with pytest.raises(ParamsError, match=r"'influence.methods' = \['dummy', .* expected a list of distinct values from tracin, "):
        load_params(_with_dummy(tmp_path, None))


def test_a_registered_estimator_runs_through_the_influence_runner(tmp_path, dummy_estimator):
    import torch

    from sampleval.data.prepared import Prepared
    from sampleval.influence.context import Baseline, Checkpoint, InfluenceSettings
    from sampleval.influence.runner import run_estimators
    from sampleval.training.loop import TrainConfig
    from sampleval.training.models import build_model

    params = load(_with_dummy(tmp_path, "{scale: 3}"))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 30)
    table = pd.DataFrame({"row": np.arange(30), "sample_id": [f"s{i}" for i in range(30)], "split": ["train"] * 20 + ["val"] * 10,
                          "label": y, "clean_label": y, "flipped": np.zeros(30, bool)})
    prepared = Prepared(images=rng.integers(0, 255, (30, 1, 8, 8)).astype(np.uint8), table=table, task="multiclass", classes=["a", "b"])
    torch.manual_seed(0)
    state = build_model("small_cnn", 1, 2, 8).state_dict()
    baseline = Baseline(prepared, TrainConfig(epochs=1, device="cpu"), [Checkpoint(1, 0.01, state)], state, 1)
    results = run_estimators(baseline, ["dummy"], InfluenceSettings.from_params(params.influence, params.seed))
    np.testing.assert_array_equal(results["dummy"].columns["dummy"], -3.0 * np.arange(20))
    assert InfluenceSettings.from_params(InfluenceSettings.from_params(params.influence, 0), 5).seed == 5  # settings pass as they are


# --------------------------------------------------------------------------- a dummy data source


def load_dummy(data: DataParams, seed: int):
    """Twelve 8x8 images of three classes, split 6/3/3."""
    n = 12
    labels = np.arange(n) % 3
    images = (np.arange(n)[:, None, None, None] * 10 + np.zeros((n, 1, 8, 8))).astype(np.uint8)
    table = pd.DataFrame({"sample_id": [f"d{i:02d}" for i in range(n)], "label": labels, "split": ["train"] * 6 + ["val"] * 3 + ["test"] * 3})
    return images, table, ["x", "y", "z"], "multiclass", []


def test_a_data_source_registered_in_a_test_validates_and_prepares(tmp_path, monkeypatch):
    monkeypatch.setitem(sources.SOURCES, "dummy", sources.Source("dummy", load_dummy, requires={"file": "dummy file"}))
    text = (ROOT / "params.yaml").read_text().replace("  source: digits ", "  source: dummy ")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match="'data.file' is null but data.source = dummy; set it to the dummy file"):
        load(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text(text.replace("  file: null ", "  file: some.bin "))
    params = load(tmp_path / "params.yaml")
    assert params.data.source == "dummy" and params.noise.kind == "none"  # auto: no noise but on digits
    manifest = prepare_dataset(params.data, params.noise, params.seed, tmp_path / "prepared")
    prepared = load_prepared(tmp_path / "prepared")
    assert manifest["source"] == "dummy" and manifest["n_samples"] == {"train": 6, "val": 3, "test": 3}
    assert prepared.classes == ["x", "y", "z"] and prepared.images.shape == (12, 1, 8, 8)
    # the source's flags drive the cross-key rules: a table source takes table models only
    monkeypatch.setitem(sources.SOURCES, "dummy", sources.Source("dummy", load_dummy, table=True))
    with pytest.raises(ParamsError, match="'model.name' = small_cnn does not fit 'data.source' = dummy"):
        load(tmp_path / "params.yaml")


def test_allowed_values_have_one_home():
    """config.py assembles the schema; the names it allows come from their owners."""
    from sampleval.influence.settings import METHODS
    from sampleval.training.settings import MODELS

    assert sources.names() == ("digits", "nih14", "chexpert", "table", "imagefolder", "manifest")
    assert sources.image_file_sources() == ("imagefolder", "manifest")
    config = (ROOT / "sampleval" / "config.py").read_text()
    for name in sources.names() + MODELS + METHODS + tuple(registry.ESTIMATORS):
        assert f'"{name}"' not in config, name
    assert "LOADERS" not in (ROOT / "sampleval" / "data" / "prepare.py").read_text()  # prepare dispatches through the registry
