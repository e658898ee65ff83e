"""One-line errors of the stages: a missing file names the file and the fix, whatever raised it."""
from __future__ import annotations

import pytest

from stages._common import one_line_errors


def _one_line(exc: Exception, capsys) -> str:
    with pytest.raises(SystemExit) as stop, one_line_errors():
        raise exc
    assert stop.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_missing_file_from_open_names_the_path_and_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SAMPLEVAL_DEBUG", raising=False)
    missing = tmp_path / "scores.parquet"
    try:
        open(missing)  # noqa: SIM115 - the real error object, errno and all
    except FileNotFoundError as exc:
        err = exc
    assert _one_line(err, capsys) == f"error: {missing} does not exist; run `dvc repro` to create it (or check the path)"


def test_missing_file_given_as_a_bare_path_names_the_path_and_the_fix(capsys, monkeypatch):
    monkeypatch.delenv("SAMPLEVAL_DEBUG", raising=False)
    line = _one_line(FileNotFoundError("data/influence/scores.parquet"), capsys)  # as pyarrow raises it
    assert line == "error: data/influence/scores.parquet does not exist; run `dvc repro` to create it (or check the path)"


def test_our_own_missing_file_sentence_is_kept(capsys, monkeypatch):
    monkeypatch.delenv("SAMPLEVAL_DEBUG", raising=False)
    msg = "subset cell metrics/subsets/x.json is missing; run `dvc repro` to create it"
    assert _one_line(FileNotFoundError(msg), capsys) == f"error: {msg}"
