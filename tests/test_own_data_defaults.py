"""Own data is used as given: noise.kind auto injects the 9 -> 4 noise on digits only."""
from __future__ import annotations

from pathlib import Path

import pytest

from dataclasses import replace

from sampleval.config import ParamsError, load, load_params, read_yaml, resolve_noise
from sampleval.data.settings import NoiseParams

ROOT = Path(__file__).resolve().parents[1]


def _params(tmp_path, **data) -> Path:
    import yaml

    params = read_yaml((ROOT / "params.yaml").read_text())
    params["data"].update(data)
    if data.get("source") == "table":
        params["model"]["name"] = "logistic"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_the_default_is_auto_pairwise_on_digits_none_on_own_data(tmp_path):
    assert read_yaml((ROOT / "params.yaml").read_text())["noise"]["kind"] == "auto"
    assert load(_params(tmp_path)).noise.kind == "pairwise"
    own = load(_params(tmp_path, source="table", file="sklearn:wine"))
    assert own.noise == NoiseParams(kind="none", rate=0.4, pairs=[[9, 4]], splits=["train"])
    for source in ("imagefolder", "manifest", "nih14"):
        assert resolve_noise(NoiseParams("auto", 0.4, [[9, 4]], ["train"]), source).kind == "none"
    asked = NoiseParams("uniform", 0.1, [], ["train"])
    assert resolve_noise(asked, "table") is asked  # asked for: injected on own data too


def test_a_bad_kind_names_auto_among_the_allowed(tmp_path):
    path = _params(tmp_path)
    path.write_text(path.read_text().replace("kind: auto", "kind: salt"))
    with pytest.raises(ParamsError, match=r"'noise.kind' = 'salt' is not allowed; expected one of auto, none, uniform, pairwise"):
        load_params(path)


def test_own_table_is_prepared_without_flips_unless_asked(tmp_path):
    from sampleval.data.prepare import prepare_dataset

    params = load(_params(tmp_path, source="table", file="sklearn:wine"))
    manifest = prepare_dataset(params.data, params.noise, 0, tmp_path / "clean")
    assert sum(manifest["n_flipped"].values()) == 0 and manifest["noise"]["kind"] == "none"
    noisy = prepare_dataset(params.data, replace(params.noise, kind="uniform", rate=0.2), 0, tmp_path / "noisy")
    assert noisy["n_flipped"]["train"] > 0
    auto = prepare_dataset(params.data, replace(params.noise, kind="auto"), 0, tmp_path / "auto")  # library callers too
    assert sum(auto["n_flipped"].values()) == 0
