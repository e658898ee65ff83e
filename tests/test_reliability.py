"""Reliability and security: hostile inputs fail loudly, in one line, and run no code."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from sampleval.training.chance import chance_level  # noqa: E402
from sampleval.config import SCHEMA, read_yaml  # noqa: E402
from sampleval.data.prepared import DataError  # noqa: E402
from sampleval.data.xray import load_nih14, read_nih14_csv  # noqa: E402
from sampleval.io import torch_save, write_json, write_npy, write_parquet  # noqa: E402
from sampleval.training.loop import TrainConfig, TrainingError, check_divergence, list_checkpoints, load_checkpoint, train  # noqa: E402
from sampleval.training.settings import ChecksParams  # noqa: E402
from stages._common import one_line_errors, require_usable_baseline  # noqa: E402
from xray_fixtures import make_nih_root, nih_frame  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class _Payload:
    """Unpickling this object writes a marker file: proof that code ran."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _payload(tmp_path) -> _Payload:
    p = _Payload()
    p.marker = str(tmp_path / "PWNED")
    return p


def test_checkpoint_with_code_is_refused_and_never_runs(tmp_path):
    path = tmp_path / "epoch-001.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "lr": 0.1, "epoch": 1, "evil": _payload(tmp_path)}, path)
    with pytest.raises(TrainingError, match="not written by sampleval"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_raw_pickle_is_refused_and_never_runs(tmp_path):
    path = tmp_path / "model.pt"
    with open(path, "wb") as fh:
        pickle.dump({"model": _payload(tmp_path)}, fh)
    with pytest.raises(TrainingError):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_checkpoint_of_tensors_and_plain_values_loads(tmp_path):
    """Everything our training loop saves (optimizer and scheduler state, RNG states,
    history) must pass the restricted unpickler."""
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3)
    state = {
        "model": model.state_dict(),
        "lr": 1e-3,
        "epoch": 1,
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "generator": torch.Generator().manual_seed(0).get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": [{"epoch": 1, "val_loss": 0.5}],
        "config": {"model": "small_cnn", "pos_weight_clamp": None},
    }
    path = tmp_path / "epoch-001.pt"
    torch_save(path, state)
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 1 and torch.equal(loaded["model"]["weight"], model.state_dict()["weight"])


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_get_the_users_umask(tmp_path, umask):
    import numpy as np
    import pandas as pd

    old = os.umask(umask)
    try:
        write_json(tmp_path / "m.json", {"a": 1.0})
        torch_save(tmp_path / "model.pt", {"w": torch.zeros(1)})
        write_npy(tmp_path / "x.npy", np.zeros(2, np.uint8))
        write_parquet(tmp_path / "t.parquet", pd.DataFrame({"a": [1]}))
    finally:
        os.umask(old)
    for name in ("m.json", "model.pt", "x.npy", "t.parquet"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


# ============================================================== helpers for stage-level tests


def _params(**sections) -> dict:
    """The committed params with some sections updated (tiny data)."""
    p = read_yaml((ROOT / "params.yaml").read_text())
    for section, values in sections.items():
        p[section].update(values)
    return p


def _stage(workdir: Path, module: str, *args: str, params: dict | None = None, text: str | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m stages.<module>`` in ``workdir`` (the repository's code on the path),
    after writing its params.yaml from ``params`` or the raw ``text``."""
    if params is not None or text is not None:
        (workdir / "params.yaml").write_text(text if text is not None else yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("SAMPLEVAL_DEBUG", None)
    env.pop("SAMPLEVAL_PARAMS", None)
    return subprocess.run([sys.executable, "-m", f"stages.{module}", *args], cwd=workdir, env=env, capture_output=True, text=True)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The failed stage's message: exit status 1 and exactly one 'error:' line, no traceback."""
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0], proc.stderr[-2000:]
    return errors[0]


def _checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


# ============================================================== params: check-params stage


def test_check_params_stage_fails_on_an_unknown_key_in_one_line(tmp_path):
    for key in ("foo", "trian"):
        proc = _stage(tmp_path, "check_params", text=(ROOT / "params.yaml").read_text() + f"\n{key}: 1\n")
        from sampleval.config import SCHEMA

        allowed = ", ".join(sorted(SCHEMA))  # every top-level section, named in the one line
        assert _one_error_line(proc) == f"error: params: unknown key '{key}' (allowed here: {allowed})"
        assert not (tmp_path / "data" / "params_ok.json").exists()


def test_check_params_stage_is_fast_and_its_output_never_changes(tmp_path):
    """Two different valid params files give the same bytes (so `prepare`, which depends on
    the stamp only to run after it, does not rerun), and no torch is imported (fast)."""
    stamps = []
    for lr in ("0.003", "1e-3"):
        start = time.perf_counter()
        proc = _stage(tmp_path, "check_params", text=(ROOT / "params.yaml").read_text().replace("lr: 0.003", f"lr: {lr}"))
        elapsed = time.perf_counter() - start
        assert proc.returncode == 0, proc.stderr
        assert elapsed < 3.0, elapsed
        stamps.append((tmp_path / "data" / "params_ok.json").read_bytes())
    assert stamps[0] == stamps[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import sys, stages.check_params; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True).stdout.strip() == "False"


def test_dvc_yaml_validates_the_whole_params_file_first():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    check = dvc["check-params"]
    assert "params.yaml" in check["deps"] and "params" not in check  # the whole file as a file dep: any edit reruns it
    assert check["outs"] == ["data/params_ok.json"]
    assert "data/params_ok.json" in dvc["prepare"]["deps"]  # every other stage is downstream of prepare
    others = [name for name, st in dvc.items() if name not in ("check-params", "prepare") and "data/params_ok.json" in st.get("deps", [])]
    assert others == []  # no other stage needs it: they all follow prepare


def test_stages_that_use_the_baseline_declare_what_the_check_reads():
    """Every stage that calls start(..., baseline=...) depends on metrics/train.json and
    declares checks.allow_chance_level, so DVC reruns it when either changes."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    users = {p.stem for p in (ROOT / "stages").glob("*.py") if "baseline=" in p.read_text()}
    assert users >= {"influence", "explain", "fidelity", "subsets"}
    for name, st in dvc.items():
        module = st["cmd"].split()[2].split(".")[1]
        if module not in users:
            continue
        assert "metrics/train.json" in st["deps"], name
        assert "checks.allow_chance_level" in st["params"], name


# ============================================================== divergence


def _tiny(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = (rng.random((n, 1, 8, 8)) * 60 + (y[:, None, None, None] * 60)).astype(np.uint8)
    return x, y


def test_lr_10_diverges_in_epoch_1_with_one_line_naming_epoch_batch_and_fix(tmp_path):
    x, y = _tiny()
    with pytest.raises(TrainingError) as err:
        train(x, y, x, y, "multiclass", 3, TrainConfig(epochs=3, batch_size=16, lr=10), seed=0, ckpt_dir=tmp_path)
    msg = str(err.value)
    assert msg.startswith("training diverged in epoch 1, batch ") and "lower train.lr (now 10)" in msg and "\n" not in msg
    assert not list(tmp_path.glob("epoch-*.pt"))  # nothing of the diverged epoch is written


def test_divergence_rule():
    history = [{"epoch": 1, "train_loss": 2.0}]
    check_divergence(torch.tensor([1.0, 150.0, 199.0]), 2, history, 0.01)  # under 100x: a spike, not divergence
    with pytest.raises(TrainingError, match=r"epoch 4, batch 2: the loss reached 250, over 100x"):
        check_divergence(torch.tensor([1.0, 250.0, 1e9]), 4, history, 0.01)
    with pytest.raises(TrainingError, match=r"epoch 2, batch 3: the loss became nan"):
        check_divergence(torch.tensor([1.0, 2.0, float("nan")]), 2, history, 0.01)
    with pytest.raises(TrainingError, match=r"epoch 1, batch 1: the loss became inf"):
        check_divergence(torch.tensor([float("inf")]), 1, [], 0.01)
    with pytest.raises(TrainingError, match=r"epoch 1, batch 3"):  # during epoch 1: against its first batch
        check_divergence(torch.tensor([2.0, 20.0, 201.0]), 1, [], 0.01)


def test_divergence_later_keeps_the_checkpoints_of_completed_epochs(tmp_path, monkeypatch):
    import sampleval.training.loop as T

    x, y = _tiny()
    real = T.check_divergence

    def diverge_in_epoch_3(losses, epoch, history, lr):
        if epoch == 3:
            losses = losses.clone()
            losses[1] = float("nan")
        return real(losses, epoch, history, lr)

    monkeypatch.setattr(T, "check_divergence", diverge_in_epoch_3)
    with pytest.raises(TrainingError, match="epoch 3, batch 2"):
        train(x, y, x, y, "multiclass", 3, TrainConfig(epochs=4, batch_size=32, lr=0.01), seed=0, ckpt_dir=tmp_path)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch-001.pt", "epoch-002.pt"]
    assert load_checkpoint(tmp_path / "epoch-002.pt")["epoch"] == 2  # complete, loadable
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


# ============================================================== chance-level baseline


DIGITS_VAL = {str(c): 27 for c in range(10)}  # 270 validation digits: majority share 0.1


@pytest.mark.parametrize(
    "metrics, task, counts, at_chance",
    [
        ({"accuracy": 0.11}, "multiclass", DIGITS_VAL, True),  # the lr=10 run
        ({"accuracy": 0.13}, "multiclass", DIGITS_VAL, True),  # within 2 standard errors of 0.1 (bar 0.1365)
        ({"accuracy": 0.20}, "multiclass", DIGITS_VAL, False),
        ({"accuracy": 0.95}, "multiclass", DIGITS_VAL, False),
        ({"accuracy": 0.80}, "multiclass", {"a": 80, "b": 20}, True),  # always 'a' gets 0.80
        ({"accuracy": 0.92}, "multiclass", {"a": 80, "b": 20}, False),
        ({"accuracy": None}, "multiclass", DIGITS_VAL, True),  # NaN is written as null
        ({"macro_auroc": 0.52}, "multilabel", {}, True),
        ({"macro_auroc": 0.81}, "multilabel", {}, False),
    ],
)
def test_chance_level(metrics, task, counts, at_chance):
    assert (chance_level(metrics, task, counts) is not None) == at_chance


def _baseline_files(tmp_path, accuracy):
    (tmp_path / "train.json").write_text(json.dumps({"val": {"accuracy": accuracy, "macro_auroc": 0.5}}))
    (tmp_path / "manifest.json").write_text(json.dumps({"task": "multiclass", "class_counts": {"val": DIGITS_VAL}}))
    return str(tmp_path / "train.json"), str(tmp_path / "manifest.json")


def test_chance_level_baseline_is_refused_in_one_line_unless_allowed(tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.delenv("SAMPLEVAL_DEBUG", raising=False)
    files = _baseline_files(tmp_path, 0.11)
    from dataclasses import replace

    from typed_params import committed

    params = replace(committed(), checks=ChecksParams(allow_chance_level=False))
    with pytest.raises(SystemExit) as stop, one_line_errors():
        require_usable_baseline(params, *files)
    assert stop.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: baseline model refused: validation accuracy 0.11 is at chance level")
    assert "checks.allow_chance_level: true" in lines[0] and "train.lr" in lines[0]
    require_usable_baseline(replace(params, checks=ChecksParams(allow_chance_level=True)), *files)  # allowed: a warning only
    assert "checks.allow_chance_level is true" in caplog.text
    require_usable_baseline(params, *_baseline_files(tmp_path, 0.9))


def test_stage_refuses_a_chance_level_baseline_before_any_work(tmp_path):
    """The real stage, on a workspace whose train.json says chance: exit 1, one line, and the
    earlier outputs untouched (it fails before loading anything else)."""
    (tmp_path / "metrics").mkdir()
    (tmp_path / "data" / "prepared").mkdir(parents=True)
    (tmp_path / "metrics" / "train.json").write_text(json.dumps({"val": {"accuracy": 0.11}}))
    (tmp_path / "data" / "prepared" / "manifest.json").write_text(json.dumps({"task": "multiclass", "class_counts": {"val": DIGITS_VAL}}))
    (tmp_path / "data" / "influence" / "methods").mkdir(parents=True)
    (tmp_path / "data" / "influence" / "methods" / "tracin.parquet").write_bytes(b"earlier output")
    before = _checksums(tmp_path / "data")
    line = _one_error_line(_stage(tmp_path, "influence", params=_params()))
    assert line.startswith("error: baseline model refused: validation accuracy 0.11")
    assert _checksums(tmp_path / "data") == before


# ============================================================== X-ray inputs (library cases: tests/test_xray.py)


ZERO = "00000003_001.png"
BROKEN = "00000011_005.png"
HALF = "00000030_000.png"


def test_nih_csv_duplicate_image_names_fail_naming_them(tmp_path):
    import pandas as pd

    frame = nih_frame()
    path = tmp_path / "Data_Entry_2017_v2020.csv"
    pd.concat([frame, frame.iloc[[3]]], ignore_index=True).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        read_nih14_csv(path)
    assert frame["Image Index"].iloc[3] in str(err.value) and "\n" not in str(err.value)


def test_zero_byte_image_fails_naming_it_or_is_skipped_with_a_warning(tmp_path, caplog):
    root = make_nih_root(tmp_path / "nih", corrupt=[BROKEN], truncated=[HALF])
    (root / "images" / ZERO).write_bytes(b"")
    with pytest.raises(DataError) as err:
        load_nih14(root, image_size=16, seed=0, val_fraction=0.2, test_fraction=0.2)
    assert ZERO in str(err.value) and "data.on_bad_image: skip" in str(err.value) and "\n" not in str(err.value)
    with caplog.at_level("WARNING", logger="sampleval"):
        data = load_nih14(root, image_size=16, seed=0, val_fraction=0.2, test_fraction=0.2, on_bad_image="skip")
    assert sorted(data.skipped) == sorted([ZERO, BROKEN, HALF])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"skipped 3 of {len(nih_frame())} images (data.on_bad_image: skip")
    assert all(name in warnings[0] for name in (ZERO, BROKEN, HALF))


def test_many_skips_show_the_first_five_and_the_count(tmp_path, caplog):
    names = nih_frame()["Image Index"].tolist()[:8]
    root = make_nih_root(tmp_path / "nih", missing=names)
    with caplog.at_level("WARNING", logger="sampleval"):
        load_nih14(root, image_size=16, seed=0, val_fraction=0.2, test_fraction=0.2, on_bad_image="skip")
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("skipped 8 of ") and warning.endswith("; ... and 3 more")
    assert sum(name in warning for name in names) == 5 and "(not found)" in warning


def test_prepare_stage_on_a_bad_image_fails_in_one_line_and_keeps_earlier_outputs(tmp_path):
    prepared = tmp_path / "data" / "prepared"  # an earlier run's outputs (their content does not matter)
    prepared.mkdir(parents=True)
    for name in ("images.npy", "samples.parquet", "manifest.json"):
        (prepared / name).write_bytes(name.encode())
    before = _checksums(prepared)
    make_nih_root(tmp_path / "data" / "raw" / "nih14", truncated=[HALF], frame=nih_frame().head(70))  # whole patients, both bad files
    (tmp_path / "data" / "raw" / "nih14" / "images" / ZERO).write_bytes(b"")
    xray = _params(data={"source": "nih14", "root": "data/raw/nih14", "image_size": 16, "val_fraction": 0.2, "test_fraction": 0.2},
                   noise={"kind": "none"}, subsets={"variants": ["global"]})
    line = _one_error_line(_stage(tmp_path, "prepare", params=xray))
    assert "unreadable image file(s)" in line or "not found" in line
    assert ZERO in line and HALF in line and line.endswith("set data.on_bad_image: skip to drop them")
    assert _checksums(prepared) == before


# ============================================================== truncated checkpoints


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.0])
def test_truncated_checkpoint_fails_in_one_line(tmp_path, keep):
    x, y = _tiny(60)
    train(x, y, x, y, "multiclass", 3, TrainConfig(epochs=1, batch_size=32, lr=0.01), seed=0, ckpt_dir=tmp_path)
    path = tmp_path / "epoch-001.pt"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(TrainingError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert msg.startswith(f"checkpoint {path} cannot be read") and "rerun `dvc repro train`" in msg and "\n" not in msg


# ============================================================== the real `dvc repro` (e2e)


def _dvc_run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    env = {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    env.pop("SAMPLEVAL_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env, capture_output=True, text=True)


def _unknown_key_and_kill_9_run(tmp_path: Path) -> None:
    """On tiny params: an unknown key fails `dvc repro` in one line though no stage reads it,
    touching nothing; kill -9 in the middle of train, then `dvc repro`, recovers to the bytes
    of an uninterrupted run."""
    import re
    import signal

    from test_e2e import make_repo

    repo = make_repo(tmp_path, lambda p: (p["data"].update(limit=300), p["influence"].update(methods=["tracin"]),
                                          p["subsets"].update(scores=["tracin"]), p["train"].update(epochs=2)))
    ran = lambda out: set(re.findall(r"Running stage '([^']+)'", out))  # noqa: E731
    first = _dvc_run(repo, "repro", "train")
    assert first.returncode == 0, first.stderr[-3000:]
    assert ran(first.stdout) == {"check-params", "prepare", "train"}
    outputs = lambda: {**_checksums(repo / "data" / "prepared"), **_checksums(repo / "models")}  # noqa: E731
    before = outputs()

    params_text = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params_text + "foo: 1\n")
    bad = _dvc_run(repo, "repro", "train")
    assert bad.returncode != 0
    errors = [line for line in (bad.stdout + bad.stderr).splitlines() if line.startswith("error:")]
    assert errors == ["error: params: unknown key 'foo' (allowed here: " + ", ".join(sorted(SCHEMA)) + ")"]
    assert ran(bad.stdout) == {"check-params"} and outputs() == before

    (repo / "params.yaml").write_text(params_text)
    fixed = _dvc_run(repo, "repro", "train")
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert ran(fixed.stdout) <= {"check-params"} and outputs() == before  # nothing heavy reruns

    # kill -9 (dvc and the stage) during training, after some checkpoints are written
    (repo / "params.yaml").write_text(params_text.replace("epochs: 2", "epochs: 20"))
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"], "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "train"], cwd=repo, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    # epoch 3 exists only in the new run (DVC removed the old outputs before the stage started)
    while not (repo / "models" / "checkpoints" / "epoch-003.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (repo / "models" / "model.pt").exists()  # killed mid-stage
    again = _dvc_run(repo, "repro", "train")
    assert again.returncode == 0, again.stderr[-3000:]
    recovered = outputs()
    assert _dvc_run(repo, "repro", "-f", "train").returncode == 0  # uninterrupted, from scratch
    assert outputs() == recovered
    assert json.loads((repo / "metrics" / "train.json").read_text())["best_epoch"] >= 1


# started with the session (tests/conftest.py: background_runs), alongside the other tests
BACKGROUND_RUNS = {"test_dvc_repro_unknown_key_and_kill_9_recovery": _unknown_key_and_kill_9_run}


@pytest.mark.e2e
def test_dvc_repro_unknown_key_and_kill_9_recovery(background_runs):
    """See _unknown_key_and_kill_9_run: its assertions fail here."""
    background_runs["test_dvc_repro_unknown_key_and_kill_9_recovery"].result()


def test_a_limit_too_small_for_a_stratified_split_names_the_params():
    from sampleval.data.splits import stratified_split

    labels = np.repeat(np.arange(10), 2)  # 20 digits, 10 classes
    with pytest.raises(ValueError) as err:
        stratified_split(labels, 0.15, 0.2, seed=0)
    assert str(err.value).startswith("a stratified split of 20 samples gives 13 train / 3 val / 4 test") and "data.limit" in str(err.value)
    assert sorted(set(stratified_split(np.repeat(np.arange(10), 7), 0.15, 0.2, seed=0))) == ["test", "train", "val"]
