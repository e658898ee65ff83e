"""What every estimator receives and where it comes from.

- :class:`Checkpoint` and :func:`load_checkpoints`: per-epoch weights with their learning rate;
- :func:`load_selected` (the one reader of ``models/model.pt``), :func:`architecture`,
  :func:`load_selected_model`;
- :class:`Baseline`: the prepared data, recipe, checkpoints and selected model, loaded once;
- :class:`InfluenceSettings` and :data:`SETTINGS` (defined in :mod:`.settings`): the influence settings every estimator reads;
- :class:`InfluenceContext`, built from those two by :func:`sampleval.influence.core.make_context`,
  and :func:`record`, where an estimator leaves its diagnostics.

:mod:`.core` re-exports these names (the estimators' shared vocabulary).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from sampleval.training.checkpoints import list_checkpoints, load_checkpoint
from sampleval.influence.registry import options_for
from sampleval.influence.settings import SETTINGS, InfluenceSettings  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from sampleval.influence.core import Samples

log = logging.getLogger(__name__)


@dataclass
class Checkpoint:
    epoch: int
    lr: float
    state: dict


def load_checkpoints(paths: Sequence[str | Path]) -> list[Checkpoint]:
    out = []
    for p in paths:
        ckpt = load_checkpoint(p)
        for key in ("model", "lr", "epoch"):
            if key not in ckpt:
                raise ValueError(f"checkpoint {p} has no '{key}' entry; rerun `dvc repro train`")
        out.append(Checkpoint(epoch=int(ckpt["epoch"]), lr=float(ckpt["lr"]), state=ckpt["model"]))
    return out


def load_selected(final_model_path: str | Path) -> tuple[dict, int | None]:
    """The weights of the model selected on validation (``models/model.pt``) and its epoch
    (None when the file does not record it): the one reader of that file."""
    final = load_checkpoint(final_model_path)
    if "model" not in final:
        raise ValueError(f"{final_model_path} has no 'model' entry; rerun `dvc repro train`")
    return final["model"], int(final["epoch"]) if "epoch" in final else None


def architecture(prepared, cfg) -> nn.Module:
    """The baseline's architecture (fresh weights) for the prepared data and the recipe ``cfg``."""
    from sampleval.training.models import build_model

    x = prepared.split("train").x
    return build_model(cfg.model, x.shape[1], prepared.n_classes, x.shape[-1], None)


def load_selected_model(prepared, cfg, final_model_path: str | Path) -> nn.Module:
    """The architecture with the selected weights (for stages that need only the final model,
    not every checkpoint: :meth:`Baseline.load` reads those too)."""
    model = architecture(prepared, cfg)
    model.load_state_dict(load_selected(final_model_path)[0])
    return model


@dataclass(frozen=True)
class Baseline:
    """The trained baseline the estimators read: the prepared data, the recipe (a ``TrainConfig``),
    the checkpoints of the baseline run and its selected model (what every estimator job shares)."""

    prepared: object
    cfg: object
    checkpoints: list[Checkpoint]
    final_state: dict
    final_epoch: int | None = None

    @classmethod
    def load(cls, prepared, cfg, checkpoint_dir: str | Path, final_model_path: str | Path) -> "Baseline":
        """From the training outputs on disk: every epoch's checkpoint and the selected model."""
        final_state, final_epoch = load_selected(final_model_path)
        return cls(prepared, cfg, load_checkpoints(list_checkpoints(checkpoint_dir)), final_state, final_epoch)

    def selected_model(self) -> nn.Module:
        """The architecture with the weights selected on validation."""
        model = architecture(self.prepared, self.cfg)
        model.load_state_dict(self.final_state)
        return model


@dataclass
class InfluenceContext:
    """Everything an estimator needs; built by :func:`sampleval.influence.core.make_context` from a
    :class:`Baseline` and :class:`InfluenceSettings`. ``options`` maps an estimator's name to
    its options (a dict or the options dataclass of :mod:`sampleval.influence.registry`; absent: the
    defaults)."""

    model: nn.Module  # the architecture; estimators load the weights they need
    loss_fn: Callable  # the training loss: loss_fn(logits, target, reduction)
    checkpoints: list[Checkpoint]  # per-epoch states with the learning rate of each epoch
    final_state: dict  # weights of the model selected on validation
    train: Samples | tuple[torch.Tensor, torch.Tensor]  # unpacks into model-ready inputs and targets
    val: Samples | tuple[torch.Tensor, torch.Tensor]
    task: str
    n_classes: int
    batch_size: int = InfluenceSettings.batch_size
    damping: float = InfluenceSettings.damping
    cg_iterations: int = InfluenceSettings.cg_iterations
    seed: int = InfluenceSettings.seed
    tracin_method: str = InfluenceSettings.tracin_method
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # for tracin / self_influence
    channels_last: bool = False  # tracin / self_influence: channels-last model (train.channels_last)
    final_epoch: int | None = None  # the epoch selected on validation (``up_to_selected`` needs it)
    shards: int = 1  # the estimators whose entry says ``shards``: training-set shards, one executor job each
    compute: object | None = None  # where an estimator's own jobs run (shards, folds, ensembles: sampleval.runtime.compute.Compute; None: here)
    options: dict = field(default_factory=dict)
    train_config: object | None = None  # the baseline's TrainConfig: estimators that retrain (trak) reuse its recipe
    job_cache: str | None = None  # folder of the job cache of the estimator's own jobs (trak's ensemble); None: no cache
    diagnostics: dict = field(default_factory=dict)

    def options_of(self, name: str):
        """The options dataclass of estimator ``name`` (validated)."""
        return options_for(name, self.options.get(name))


def record(ctx, name: str, info: dict) -> None:
    """Log an estimator's diagnostics and keep them in ``ctx.diagnostics[name]``."""
    log.info("%s: %s", name, ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()))
    ctx.diagnostics.setdefault(name, {}).update(info)
