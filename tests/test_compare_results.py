"""scripts/compare_results.py: CI's reproducibility check compares JSON leaves by tolerance
off the reference machine class."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("compare_results", ROOT / "scripts" / "compare_results.py")
cr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cr)

TOL = {"abs": 0.02, "rel": 0.05}


def _cmp(new, old, ignore=("sha256",)):
    return cr.compare_json(json.dumps(new).encode(), json.dumps(old).encode(), TOL, set(ignore))


def test_numbers_within_tolerance_pass_and_beyond_fail():
    assert _cmp({"a": {"acc": 0.91}}, {"a": {"acc": 0.90}}) == []
    assert _cmp({"a": {"acc": 0.99}}, {"a": {"acc": 0.90}}) == ["a.acc: 0.99 vs committed 0.9"]


def test_strings_lengths_and_missing_keys_must_match_and_hashes_are_skipped():
    assert _cmp({"k": "tracin"}, {"k": "loss"}) == ["k: 'tracin' vs committed 'loss'"]
    assert _cmp({"l": [1, 2, 3]}, {"l": [1, 2]})[0].startswith("l#len")
    assert _cmp({"x": 1, "y": 2}, {"x": 1}) == ["y: only in the new run"]
    assert _cmp({"sha256": "aa", "x": 1}, {"sha256": "bb", "x": 1}) == []


def test_reference_names_a_class_that_sampleval_kernels_produces():
    ref = json.loads((ROOT / ".ci" / "reference.json").read_text())
    assert ref["machine_class"] == "x86_64-avx2"
    assert {"abs", "rel"} <= set(ref["tolerance"])
