"""Training with per-epoch checkpoints and validation-only model selection.

Recipe (the study's): focal loss with label smoothing, AdamW, a cosine learning-rate
schedule stepped once per epoch (so each epoch runs at one learning rate, which is the
learning rate TracIn weights that epoch's checkpoint by), optional augmentation.

The best epoch is the one with the lowest validation loss; the test set is never
looked at here.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from sampleval.training.checkpoints import TrainingError, epoch_checkpoint_path, list_checkpoints, load_checkpoint, save_checkpoint
from sampleval.training.losses import TrainingLoss, clamped_pos_weight
from sampleval.training.models import build_model

log = logging.getLogger(__name__)

__all__ = [  # checkpoint names re-exported for callers that import them from here
    "TrainingError", "epoch_checkpoint_path", "list_checkpoints", "load_checkpoint", "save_checkpoint",
    "TrainConfig", "TrainResult", "train", "pick_device", "make_loss", "predict_logits", "to_float", "target_tensor", "gather_images",
]


@dataclass
class TrainConfig:
    model: str = "small_cnn"
    pretrained: str | None = None
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    focal_gamma: float = 2.0
    label_smoothing: float = 0.05
    pos_weight_clamp: list[float] | None = None
    augment: bool = False
    device: str = "auto"
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    num_workers: int = 0

    @classmethod
    def from_params(cls, params) -> "TrainConfig":
        """From :class:`sampleval.config.Params`: its ``model`` and ``train`` sections."""
        t = params.train
        return cls(model=params.model.name, pretrained=params.model.pretrained,
                   **{k: getattr(t, k) for k in cls.__dataclass_fields__ if hasattr(t, k)})


@dataclass
class TrainResult:
    history: list[dict]
    best_epoch: int
    best_state: dict
    model: nn.Module
    loss_fn: TrainingLoss
    checkpoints: list[Path] = field(default_factory=list)


def pick_device(choice: str) -> torch.device:
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainingError("train.device = cuda but no CUDA device is available; use auto or cpu")
        return torch.device("cuda")
    return torch.device("cpu")


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] -> float in [-1, 1]; float inputs (table features, already
    standardised by prepare) are returned as float32, unscaled."""
    if x.dtype != torch.uint8:
        return x.float()
    return x.float().div_(127.5).sub_(1.0)


def augment_batch(x: torch.Tensor, gen: torch.Generator, flip: bool) -> torch.Tensor:
    """Random translation (reflect-pad by size/8, random crop) and optional horizontal flip."""
    n, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    out = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    if flip:
        mask = torch.rand(n, generator=gen) < 0.5
        out[mask] = out[mask].flip(-1)
    return out


def make_loss(task: str, cfg: TrainConfig, y_train: np.ndarray) -> TrainingLoss:
    pos_weight = None
    if task == "multilabel" and cfg.pos_weight_clamp is not None:
        pos_weight = clamped_pos_weight(torch.as_tensor(y_train, dtype=torch.float32), *cfg.pos_weight_clamp)
    return TrainingLoss(task, cfg.focal_gamma, cfg.label_smoothing, pos_weight)


def target_tensor(y: np.ndarray, task: str) -> torch.Tensor:
    return torch.tensor(np.asarray(y), dtype=torch.float32 if task == "multilabel" else torch.long)


def gather_images(x: np.ndarray, idx: np.ndarray) -> torch.Tensor:
    """uint8 rows ``x[idx]`` as a fresh tensor, read from a (possibly memory-mapped) array.

    The one way batches are cut from image arrays, for training and influence alike. For
    grayscale images the stride of the size-1 channel axis is arbitrary (numpy picks it
    case by case), yet it decides the memory format PyTorch's CPU convolutions choose;
    it is fixed here to the channels-last reading (stride 1), which gives the default
    SmallCNN a 3x faster forward pass on the CPU (ResNet-18, DenseNet-121: no change)."""
    t = torch.from_numpy(np.ascontiguousarray(x[idx]))
    if t.ndim == 4 and t.shape[1] == 1:
        _, _, h, w = t.shape
        t = t.as_strided(t.shape, (h * w, 1, w, 1))
    return t


class _Batches(torch.utils.data.Dataset):
    """Whole batches gathered from a (possibly memory-mapped) uint8 image array."""

    def __init__(self, x: np.ndarray, y: torch.Tensor, batches: list[torch.Tensor]):
        self.x, self.y, self.batches = x, y, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.batches[i]
        return gather_images(self.x, idx.numpy()), self.y[idx]


def batch_loader(x: np.ndarray, y: torch.Tensor, batches: list[torch.Tensor], num_workers: int = 0, pin: bool = False):
    """Batches in the given order; worker processes gather them, pinned for fast host-to-GPU copies.
    The order is fixed by the caller, so results do not depend on the number of workers."""
    return torch.utils.data.DataLoader(_Batches(x, y, batches), batch_size=None, shuffle=False, num_workers=num_workers, pin_memory=pin)


def iterate_batches(n: int, batch_size: int, order: torch.Tensor | None = None):
    idx = order if order is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield idx[start : start + batch_size]


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = 512, device: torch.device | None = None, amp: bool = False) -> np.ndarray:
    device = device or next(model.parameters()).device
    model.eval()
    outs = []
    for start in range(0, len(x), batch_size):
        xb = to_float(torch.from_numpy(np.array(x[start : start + batch_size])).to(device, non_blocking=True))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            outs.append(model(xb).float().cpu())
    return torch.cat(outs).numpy() if outs else np.zeros((0, 0), np.float32)


@dataclass
class _Run:
    """The objects of one training run."""

    model: nn.Module
    step_model: Callable  # the model, or its torch.compile'd version
    loss_fn: TrainingLoss
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    gen: torch.Generator
    device: torch.device
    use_amp: bool


def _setup(x_train: np.ndarray, y_train: np.ndarray, task: str, n_outputs: int, cfg: TrainConfig, seed: int) -> _Run:
    """Seed, build the model, loss, optimiser and schedule (in this order: the RNG draws are fixed)."""
    device = pick_device(cfg.device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_model(cfg.model, x_train.shape[1], n_outputs, x_train.shape[-1], cfg.pretrained).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = make_loss(task, cfg, y_train)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    step_model = torch.compile(model) if cfg.compile else model
    return _Run(model, step_model, loss_fn, opt, sched, gen, device, cfg.amp and device.type == "cuda")


def _resume(run: _Run, ckpt_dir: Path) -> tuple[list[dict], int, list[Path]]:
    """Restore the last complete checkpoint in ``ckpt_dir``: ``(history, next epoch, checkpoints)``."""
    existing = sorted(ckpt_dir.glob("epoch-*.pt"))
    if not existing:
        return [], 1, []
    state = load_checkpoint(existing[-1])
    run.model.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    run.sched.load_state_dict(state["scheduler"])
    run.gen.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    log.info("resuming from %s (epoch %d)", existing[-1], state["epoch"])
    return state["history"], state["epoch"] + 1, existing


def _train_epoch(run: _Run, cfg: TrainConfig, x_train: np.ndarray, yt: torch.Tensor, wt: torch.Tensor | None, flip_augment: bool) -> tuple[float, torch.Tensor]:
    """One pass over the training set in a seeded random order; returns the mean training
    loss and the per-batch losses (still on the device, for :func:`check_divergence`)."""
    model, device = run.model, run.device
    model.train()
    order = torch.randperm(len(yt), generator=run.gen)
    batches = list(iterate_batches(len(yt), cfg.batch_size, order))
    total = torch.zeros((), device=device)
    batch_losses = []
    for b, (xb, yb) in zip(batches, batch_loader(x_train, yt, batches, cfg.num_workers, pin=device.type == "cuda")):
        if cfg.augment:
            xb = augment_batch(xb, run.gen, flip_augment)
        xb = to_float(xb.to(device, non_blocking=True))
        if cfg.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        yb = yb.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=run.use_amp):
            logits = run.step_model(xb)
        if wt is None:
            loss = run.loss_fn(logits.float(), yb, reduction="mean")
        else:
            wb = wt[b].to(device)
            loss = (run.loss_fn(logits.float(), yb, reduction="none") * wb).sum() / wb.sum().clamp_min(1e-12)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        total += loss.detach() * len(yb)
        batch_losses.append(loss.detach())
    return float(total) / len(yt), torch.stack(batch_losses)  # one host sync per epoch


def _validate(run: _Run, x_val: np.ndarray, yv: torch.Tensor, amp: bool) -> tuple[np.ndarray, float]:
    val_logits = predict_logits(run.model, x_val, device=run.device, amp=amp)
    return val_logits, float(run.loss_fn(torch.from_numpy(val_logits), yv, reduction="mean"))


DIVERGENCE_FACTOR = 100.0


def check_divergence(batch_losses: torch.Tensor, epoch: int, history: list[dict], lr: float) -> None:
    """Stop training when it diverged in this epoch: a non-finite batch loss, or a batch loss
    more than ``DIVERGENCE_FACTOR`` (100) times the reference, which is epoch 1's mean
    training loss (during epoch 1: its first batch's, the untrained model's loss, about
    ln(classes) for cross-entropy). On the default digits setup (10 epochs, batch 64) the
    largest batch loss relative to that reference was 1.0 at lr 0.003 (the default), 1.8
    at 0.03 and 34 at 0.1 (spiky, yet val accuracy 0.89); at 0.3 it was 1266 in epoch 1's
    second batch (val accuracy near chance) and at 10 about 1e9: 100 separates them.

    Called once per epoch, before that epoch's checkpoint is written, so the checkpoints of
    completed epochs stay and nothing of the diverged epoch is saved. ``batch_losses``
    stays on the device until here: one host sync per epoch."""
    losses = batch_losses.detach().float().cpu()
    reference = history[0]["train_loss"] if history else float(losses[0])
    finite = torch.isfinite(losses)
    bad = ~finite | (losses > DIVERGENCE_FACTOR * reference) if math.isfinite(reference) and reference > 0 else ~finite
    if not bad.any():
        return
    b = int(bad.nonzero()[0, 0])
    value = float(losses[b])
    why = f"became {value}" if not math.isfinite(value) else f"reached {value:.3g}, over {DIVERGENCE_FACTOR:g}x epoch 1's {reference:.3g}"
    raise TrainingError(
        f"training diverged in epoch {epoch}, batch {b + 1}: the loss {why}; lower train.lr (now {lr:g}), "
        f"e.g. to {lr / 10:g} (checkpoints of completed epochs are kept)"
    )


def train(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    task: str,
    n_outputs: int,
    cfg: TrainConfig,
    seed: int,
    ckpt_dir: str | Path | None = None,
    resume: bool = False,
    flip_augment: bool = False,
    progress: Callable | None = None,
    val_metrics: Callable[[np.ndarray], dict] | None = None,
    sample_weight: np.ndarray | None = None,
) -> TrainResult:
    """Train from scratch (or resume from the last complete checkpoint in ``ckpt_dir``).

    ``val_metrics(val_logits) -> dict`` adds per-epoch validation metrics to the history.
    ``sample_weight`` (one weight per training sample) turns each batch's loss into a
    weighted mean; a weight of 0 leaves a sample out while every batch keeps its order
    (leave-one-out retraining without reshuffling).
    Each epoch's checkpoint (:func:`~sampleval.training.checkpoints.save_checkpoint`) holds the
    weights, the learning rate used during that epoch, the epoch number, and the
    optimiser/scheduler/RNG state for resuming.
    """
    run = _setup(x_train, y_train, task, n_outputs, cfg, seed)
    history: list[dict] = []
    start_epoch, checkpoints = 1, []
    if ckpt_dir is not None:
        ckpt_dir = Path(ckpt_dir)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            history, start_epoch, checkpoints = _resume(run, ckpt_dir)
    yt, yv = target_tensor(y_train, task), target_tensor(y_val, task)
    wt = None if sample_weight is None else torch.as_tensor(np.asarray(sample_weight), dtype=torch.float32)

    for epoch in range(start_epoch, cfg.epochs + 1):
        lr_used = run.opt.param_groups[0]["lr"]
        train_loss, batch_losses = _train_epoch(run, cfg, x_train, yt, wt, flip_augment)
        check_divergence(batch_losses, epoch, history, cfg.lr)
        run.sched.step()
        val_logits, val_loss = _validate(run, x_val, yv, cfg.amp)
        record = {"epoch": epoch, "lr": lr_used, "train_loss": train_loss, "val_loss": val_loss}
        if val_metrics is not None:
            record.update(val_metrics(val_logits))
        history.append(record)
        if progress:
            progress(record)
        if ckpt_dir is not None:
            checkpoints.append(save_checkpoint(epoch_checkpoint_path(ckpt_dir, epoch), run.model, lr_used, epoch, run.opt, run.sched, run.gen, history))
        if epoch == _best(history)["epoch"]:
            best_state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}

    best = _best(history)
    if best["epoch"] < start_epoch:  # the best epoch was trained before a resume
        best_state = load_checkpoint(epoch_checkpoint_path(ckpt_dir, best["epoch"]))["model"]
    run.model.load_state_dict(best_state)
    return TrainResult(history, best["epoch"], best_state, run.model, run.loss_fn, checkpoints)


def _best(history: list[dict]) -> dict:
    finite = [h for h in history if math.isfinite(h["val_loss"])]
    if not finite:
        raise TrainingError("validation loss is not finite in any epoch; lower train.lr or check the data")
    return min(finite, key=lambda h: (h["val_loss"], h["epoch"]))
