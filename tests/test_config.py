import copy
from pathlib import Path

import pytest
import yaml

from sampleval.config import ParamsError, check_consistency, load_params, validate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def params():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_committed_params_are_valid(params):
    validate(params)
    check_consistency(params)


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("subsets", "remove_fractions"), [0.05, 1.0], "'subsets.remove_fractions'"),
        (("subsets", "select_fractions"), [0.0], "strictly between 0 and 1"),
        (("subsets", "seeds"), [0, 1, 2, 3, 4], "'subsets.seeds'"),
        (("subsets", "seeds"), list(range(21)), "6 to 20 distinct"),
        (("subsets", "variants"), ["per-class"], "'subsets.variants'"),
        (("model", "name"), "vgg16", "'model.name' = 'vgg16' is not allowed; expected one of small_cnn"),
        (("train", "lr"), -1, "'train.lr'"),
        (("noise", "kind"), "salt", "'noise.kind'"),
        (("train", "epochs"), 2.5, "'train.epochs'"),
    ],
)
def test_bad_values_name_the_key(params, path, value, message):
    bad = copy.deepcopy(params)
    bad[path[0]][path[1]] = value
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(bad)


def test_unknown_and_missing_keys(params):
    bad = copy.deepcopy(params)
    bad["train"]["learning_rate"] = 0.1
    with pytest.raises(ParamsError, match="unknown key 'train.learning_rate'"):
        validate(bad)
    bad = copy.deepcopy(params)
    del bad["stats"]["alpha"]
    with pytest.raises(ParamsError, match="missing key 'stats.alpha'"):
        validate(bad)


def test_score_must_be_computed(params):
    bad = copy.deepcopy(params)
    bad["influence"]["methods"] = ["tracincp"]
    with pytest.raises(ParamsError, match="'subsets.scores' lists tracin, self_influence, loss, not in 'influence.methods'"):
        check_consistency(bad)
    bad = copy.deepcopy(params)
    bad["data"]["source"] = "nih14"
    with pytest.raises(ParamsError, match="'subsets.variants' may include 'stratified' only for multi-class"):
        check_consistency(bad)


def test_load_params_errors(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "p.yaml").write_text("seed: [\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "p.yaml")


def test_presets_are_valid():
    for preset in sorted((ROOT / "presets").glob("*.yaml")):
        params = load_params(preset)
        assert params["model"]["name"] in ("small_cnn", "resnet18", "densenet121"), preset
