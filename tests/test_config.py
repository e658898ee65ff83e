import copy
from pathlib import Path

import pytest
import yaml

from sampleval.config import ParamsError, load, load_params, read_yaml, typed, validate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def params():
    return read_yaml((ROOT / "params.yaml").read_text())


def test_committed_params_are_valid(params):
    validate(params)
    typed(params)


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
        typed(bad)
    bad = copy.deepcopy(params)
    bad["data"]["source"] = "nih14"
    with pytest.raises(ParamsError, match="'subsets.variants' may include 'stratified' only for multi-class"):
        typed(bad)


def test_load_params_errors(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "p.yaml").write_text("seed: [\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "p.yaml")


def test_presets_are_valid():
    for preset in sorted((ROOT / "presets").glob("*.yaml")):
        params = load(preset)  # every key and every cross-section rule
        assert params.model.name in ("small_cnn", "resnet18", "densenet121"), preset


# ---------------------------------------------------------------- params as people write them


def _write(tmp_path, params: dict, **replace: str) -> Path:
    """params.yaml as a person would write it: ``replace`` maps a rendered 'key: value' line
    to the text that replaces it (e.g. a number in scientific notation)."""
    text = yaml.safe_dump(params, sort_keys=False)
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("written, value", [("1e-3", 1e-3), ("1.0e-3", 1e-3), ("3e-4", 3e-4), ("1E-2", 1e-2), ("+2.5e-3", 2.5e-3)])
def test_learning_rate_in_scientific_notation(tmp_path, params, written, value):
    path = _write(tmp_path, params, **{"lr: 0.003": f"lr: {written}"})
    assert load_params(path)["train"]["lr"] == value


def test_scientific_notation_wherever_a_number_is_expected(tmp_path, params):
    path = _write(
        tmp_path, params,
        **{"weight_decay: 0.0001": "weight_decay: 1e-4", "n_bootstrap: 10000": "n_bootstrap: 1E4", "alpha: 0.05": "alpha: 5e-2",
           "damping: 0.1": "damping: 1e-1", "remove_fractions:\n  - 0.05": "remove_fractions:\n  - 5e-2"},
    )
    p = load_params(path)
    assert p["train"]["weight_decay"] == 1e-4 and p["stats"]["alpha"] == 0.05 and p["influence"]["damping"] == 0.1
    assert p["subsets"]["remove_fractions"][0] == 0.05
    assert p["stats"]["n_bootstrap"] == 10000 and type(p["stats"]["n_bootstrap"]) is int  # integer params get an int


def test_dvc_reads_the_same_numbers(tmp_path):
    """DVC parses params.yaml itself (ruamel, YAML 1.2) for params tracking and for the
    ${...} interpolation of the matrix stages: both readers must see the same values, and
    a fraction must render in a stage command as the subset stage formats its output path."""
    from dvc.utils.serialize._yaml import parse_yaml

    text = "a: 1e-3\nb: 1.0e-3\nc: 3e-4\nd: 1E5\ne: -2.5E-2\nf: .5\ng: 1e+3\nh: [5e-2, 0.15, 1e-5]\ni: 10\nj: '1e-3'\nk: 0.003\n"
    ours, dvcs = read_yaml(text), parse_yaml(text, "params.yaml")
    assert ours == dvcs
    assert [type(v) for v in ours.values()] == [type(v) for v in dvcs.values()]
    for fraction in dvcs["h"]:  # dvc renders ${item.fraction} with str(); stages.subset parses it back with float()
        assert str(fraction) == str(float(str(fraction)))


def test_quoted_number_names_the_key_and_says_why(tmp_path, params):
    path = _write(tmp_path, params, **{"lr: 0.003": "lr: '1e-3'"})
    with pytest.raises(ParamsError, match=r"'train.lr' = '1e-3' is not allowed; .*read as text"):
        load_params(path)


def test_unknown_top_level_key(params):
    for key in ("foo", "trian"):
        bad = copy.deepcopy(params)
        bad[key] = 1
        with pytest.raises(ParamsError, match=f"unknown key '{key}' \\(allowed here: checks, compute, corrections, data, detect, fidelity"):
            validate(bad)


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("fidelity", "n_points"), 2, "'fidelity.n_points' = 2 is not allowed; expected an integer in [3, 10000] (correlations need at least 3 points)"),
        (("fidelity", "n_subsets"), 2, "'fidelity.n_subsets'"),
        (("stats", "n_bootstrap"), 10, "'stats.n_bootstrap'"),
        (("subsets", "seeds"), [0, 1, 2, 3, 4, 4], "'subsets.seeds'"),
        (("subsets", "seeds"), [0, 1, 2, 3, 4, -5], "'subsets.seeds'"),
        (("subsets", "remove_fractions"), [0.1, 0.1], "'subsets.remove_fractions'"),
        (("train", "augment"), "yes", "'train.augment' = 'yes' is not allowed; expected true or false"),
        (("train", "epochs"), "10", "'train.epochs' = '10' is not allowed; expected an integer in [1, 1000] (it was read as text"),
        (("train", "lr"), 0, "'train.lr' = 0 is not allowed; expected a number in (0, 10]"),
        (("train", "lr"), float("nan"), "'train.lr'"),
        (("checks", "allow_chance_level"), 1, "'checks.allow_chance_level'"),
    ],
)
def test_impossible_and_mistyped_values(params, path, value, message):
    bad = copy.deepcopy(params)
    bad[path[0]][path[1]] = value
    with pytest.raises(ParamsError) as err:
        validate(bad)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_integral_floats_become_integers_but_fractions_do_not(params):
    ok = copy.deepcopy(params)
    ok["train"]["epochs"] = 3.0
    assert validate(ok)["train"]["epochs"] == 3 and type(ok["train"]["epochs"]) is int
    bad = copy.deepcopy(params)
    bad["train"]["epochs"] = 2.5
    with pytest.raises(ParamsError, match="'train.epochs'"):
        validate(bad)


@pytest.mark.parametrize("alpha, n_seeds, ok", [(0.05, 6, True), (0.05, 5, False), (0.01, 7, False), (0.01, 8, True), (0.1, 6, True)])
def test_seeds_must_be_able_to_reach_alpha(params, alpha, n_seeds, ok):
    """A two-sided exact paired test over n seeds cannot give p below 2 / 2^n."""
    p = copy.deepcopy(params)
    p["stats"]["alpha"], p["subsets"]["seeds"] = alpha, list(range(n_seeds))
    p["refine"]["rounds"] = 1  # refine.seeds' own floor (BH over the rounds): tests/test_refine.py
    if ok:
        typed(p)
        return
    with pytest.raises(ParamsError) as err:
        validate(p)
        typed(p)
    assert "'subsets.seeds'" in str(err.value) or "'stats.alpha'" in str(err.value)
    if n_seeds >= 6:  # the per-key rule (>= 6 seeds) passed: the cross-key rule names both and the fix
        assert f"use at least {8 if alpha == 0.01 else 6} seeds" in str(err.value)
