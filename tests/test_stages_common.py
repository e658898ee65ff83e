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


def test_library_errors_are_one_line_and_bugs_keep_their_traceback(capsys, monkeypatch):
    from sampleval.data.prepared import DataError
    from sampleval.training.loop import TrainingError

    monkeypatch.delenv("SAMPLEVAL_DEBUG", raising=False)
    assert _one_line(TrainingError("training diverged"), capsys) == "error: training diverged"
    assert _one_line(DataError("bad image"), capsys) == "error: bad image"
    with pytest.raises(ZeroDivisionError), one_line_errors():  # a bug is not an input error
        1 / 0
    monkeypatch.setenv("SAMPLEVAL_DEBUG", "1")
    with pytest.raises(TrainingError), one_line_errors():
        raise TrainingError("full traceback wanted")


def test_start_imports_torch_only_for_stages_that_compute_with_it():
    """The table and figure stages (stats, scores, detect-summary, report) start without torch
    (seconds per stage); the others get its threads from params (train.cpu_threads: 1)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def run(code: str) -> str:
        return subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

    assert run("import sys; from stages._common import start; start('x', torch=False); print('torch' in sys.modules)") == "False"
    assert run("from stages._common import start; start('x'); import torch; print(torch.get_num_threads())") == "1"
    for module, name in (("stats", "stats"), ("scores", "scores"), ("detect_summary", "detect-summary"), ("report", "report")):
        assert f'start("{name}", torch=False)' in (root / "stages" / f"{module}.py").read_text()


def test_kernel_pinning_is_logged_once_per_run_by_check_params(caplog):
    """Every stage runs with the pinned kernels, but only check-params (the first stage of every run) says so."""
    import logging
    from pathlib import Path

    import stages._common as common

    with caplog.at_level(logging.INFO, logger="sampleval"):
        common.start("stats", torch=False)
        assert "CPU kernels" not in caplog.text
        common.start("check-params", torch=False, announce=True)
        assert caplog.text.count("CPU kernels:") == 1
    root = Path(__file__).resolve().parents[1]
    assert "announce=True" in (root / "stages" / "check_params.py").read_text()
    assert sum("announce=True" in p.read_text() for p in (root / "stages").glob("*.py") if p.name != "_common.py") == 1


def test_train_stage_logs_every_epoch(caplog):
    import logging

    from stages.train import epoch_logger

    report = epoch_logger(3)
    with caplog.at_level(logging.INFO, logger="sampleval"):
        for epoch in (1, 2, 3):
            report({"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 0.5, "val_accuracy": 0.9})
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "train loss 0.5000, val loss 0.5000, val accuracy 0.9000" in lines[1]


def test_fit_calls_progress_once_per_epoch():
    import numpy as np

    from sampleval.training.loop import TrainConfig, train

    rng = np.random.default_rng(0)
    x, y = rng.random((40, 1, 8, 8)).astype(np.float32), np.arange(40) % 2
    seen = []
    cfg = TrainConfig(epochs=2, batch_size=16)
    train(x, y, x, y, "multiclass", 2, cfg, 0, progress=seen.append)
    assert [r["epoch"] for r in seen] == [1, 2]
