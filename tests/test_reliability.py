"""Reliability and security: hostile inputs fail loudly, in one line, and run no code."""
from __future__ import annotations

import os
import pickle
import stat

import pytest
import torch

from sampleval.io import torch_save, write_json, write_npy, write_parquet
from sampleval.training import TrainingError, load_checkpoint


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
