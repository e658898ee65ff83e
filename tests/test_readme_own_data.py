"""Docs test: every example of README "Use your own data" runs (params valid, prepare, one
training epoch) on tiny data generated at the paths the example names."""
import copy
import re
from pathlib import Path

import numpy as np
import pytest

from sampleval.config import read_yaml, typed
from sampleval.data.prepared import load_prepared
from sampleval.training.retrain import train_and_evaluate
from sampleval.data.prepare import prepare_dataset
from sampleval.training.loop import TrainConfig
from sources_fixtures import make_imagefolder, make_manifest, make_table

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
EXAMPLES = dict(re.findall(r"<!-- docs-test: ([\w-]+) -->\n```yaml\n(.*?)```", README, flags=re.S))
FIXTURES = {
    "table": lambda: make_table(Path("data/raw/customers.csv")),
    "imagefolder": lambda: make_imagefolder(Path("data/raw/pets"), n_per_class=12, rgb=True),
    "manifest": lambda: make_manifest(Path("data/raw/scans"), n=45),
    "manifest-multilabel": lambda: Path("data/raw/scans/manifest.csv").rename(
        make_manifest(Path("data/raw/scans"), n=60, multilabel=True, groups=True).with_name("findings.csv")),
}


def merge(base: dict, edit: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in edit.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def test_every_source_has_an_example():
    assert set(EXAMPLES) == set(FIXTURES)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_readme_example_runs(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    FIXTURES[name]()
    params = merge(read_yaml((ROOT / "params.yaml").read_text()), read_yaml(EXAMPLES[name]))
    params = typed(params)  # every key and every cross-section rule
    manifest = prepare_dataset(params.data, params.noise, params.seed, "data/prepared")
    assert manifest["source"] == params.data.source and all(manifest["n_samples"].values())
    prepared = load_prepared("data/prepared")
    cfg = TrainConfig.from_params(params)
    cfg.epochs = 1
    _, metrics = train_and_evaluate(prepared, cfg, 0, ckpt_dir=tmp_path / "checkpoints")
    assert np.isfinite(metrics["test"]["macro_f1"])
