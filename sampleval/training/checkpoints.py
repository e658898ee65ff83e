"""Per-epoch training checkpoints: where they live, how they are listed, loaded and saved.

A checkpoint ``epoch-NNN.pt`` holds the weights (``model``), the learning rate used
during that epoch (``lr``, the weight TracIn gives it), the epoch number, and the
optimiser, scheduler, generator and torch RNG states plus the history for resuming.
"""
from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

from sampleval.errors import TrainingError
from sampleval.io import torch_save

_NAME = re.compile(r"epoch-\d{3}\.pt")


def epoch_checkpoint_path(ckpt_dir: str | Path, epoch: int) -> Path:
    return Path(ckpt_dir) / f"epoch-{epoch:03d}.pt"


def list_checkpoints(ckpt_dir: str | Path) -> list[Path]:
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        raise TrainingError(f"checkpoint folder {ckpt_dir} is missing; run `dvc repro train` first")
    paths = sorted(p for p in ckpt_dir.glob("epoch-*.pt") if _NAME.fullmatch(p.name))
    if not paths:
        raise TrainingError(f"no checkpoints (epoch-NNN.pt) in {ckpt_dir}; run `dvc repro train` first")
    return paths


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint we wrote: tensors and plain Python values only.

    Loaded with ``weights_only=True``: PyTorch's restricted unpickler refuses any other
    object (a tampered file with code in it fails here, and its code never runs)."""
    path = Path(path)
    if not path.exists():
        raise TrainingError(f"checkpoint {path} is missing; run `dvc repro train` to recreate it")
    if not zipfile.is_zipfile(path):  # ours are zip archives; never hand anything else to an unpickler
        raise TrainingError(f"checkpoint {path} cannot be read (not a PyTorch archive: truncated, corrupt or a raw pickle); delete it and rerun `dvc repro train`")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise TrainingError(
            f"checkpoint {path} holds objects other than tensors and plain values, so it was not written by sampleval "
            "and is refused (nothing in it was run); delete it and rerun `dvc repro train`"
        ) from exc
    except Exception as exc:  # truncated or corrupt file
        raise TrainingError(f"checkpoint {path} cannot be read ({exc.__class__.__name__}); delete it and rerun `dvc repro train`") from exc


def save_checkpoint(path: str | Path, model, lr: float, epoch: int, opt, sched, gen: torch.Generator, history: list[dict]) -> Path:
    """Write one epoch's checkpoint atomically (weights, lr, epoch and everything a resume needs)."""
    torch_save(
        path,
        {
            "model": model.state_dict(),
            "lr": lr,
            "epoch": epoch,
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": history,
        },
    )
    return Path(path)
