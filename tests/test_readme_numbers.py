"""README numbers that quote the committed metrics match them (scripts/readme_numbers.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import readme_numbers as rn  # noqa: E402


def test_every_marked_readme_number_matches_its_file():
    text = (ROOT / "README.md").read_text()
    assert len(rn.find_marks(text)) >= 20  # the refinement, detection and score-shape paragraphs are marked
    problems = rn.check(text)
    assert not problems, "README numbers differ from the metrics; run `python scripts/readme_numbers.py --write`:\n" + "\n".join(problems)


def test_check_finds_a_stale_number_and_write_fixes_it(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "m.json").write_text(json.dumps(
        {"rounds": [{"q": 0.0938}, {"q": 0.5}], "cells": {"a/b@0.05": {"auroc": 0.97794, "n": 47}}, "acc": 0.9542, "name": "x"}))
    (tmp_path / "RESULTS.md").write_text("LDS 0.27 at 60 subsets")
    text = ("q <!-- m: metrics/m.json#rounds.0.q -->0.041<!-- /m --> and <!-- m: metrics/m.json#cells[\"a/b@0.05\"].auroc .3f -->0.978<!-- /m -->, "
            "<!-- m: metrics/m.json#cells[\"a/b@0.05\"].n -->47<!-- /m --> flips, accuracy <!-- m: metrics/m.json#acc %.1f -->95.4<!-- /m --> %, "
            "LDS <!-- m: RESULTS.md -->0.27<!-- /m -->")
    assert rn.check(text, tmp_path) == ["line 1: metrics/m.json#rounds.0.q: README says 0.041, the file gives 0.094"]
    fixed = rn.rewrite(text, tmp_path)
    assert "rounds.0.q -->0.094<!-- /m -->" in fixed and rn.check(fixed, tmp_path) == []
    assert fixed.replace("0.094", "0.041") == text  # nothing else touched
    broken = ["<!-- m: metrics/m.json#rounds.5.q -->1<!-- /m -->", "<!-- m: metrics/nope.json#a -->1<!-- /m -->",
              "<!-- m: metrics/m.json#name -->1<!-- /m -->", "<!-- m: RESULTS.md -->0.31<!-- /m -->"]
    msgs = [rn.check(b, tmp_path)[0] for b in broken]
    assert "no key 5" in msgs[0] and "metrics/nope.json does not exist" in msgs[1]
    assert "is not a number" in msgs[2] and "'0.31' does not occur in RESULTS.md" in msgs[3]
    with pytest.raises(rn.MarkError):
        rn.rewrite(broken[0], tmp_path)


def test_marks_are_invisible_comments():
    text = (ROOT / "README.md").read_text()
    for mark in rn.find_marks(text):
        assert "\n" not in mark.text and mark.text.strip() == mark.text and mark.text
