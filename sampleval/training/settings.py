"""params' ``model``, ``train`` and ``checks`` sections, and the model names (the one home;
:mod:`sampleval.training.models` builds them). The recipe a run trains with is
:class:`sampleval.training.loop.TrainConfig`, built from ``model`` and ``train``.

Standard library only: params validation imports it in every stage before any work.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sampleval.schema import BOOL, OPTIONAL_PATH, Spec, choice, integer, is_number, number, setting

TABLE_MODELS = ("logistic", "mlp")
IMAGE_MODELS = ("small_cnn", "resnet18", "densenet121")
LARGE_IMAGE_MODELS = ("resnet18", "densenet121")  # torchvision models: pretrained weights, images of at least 32 px
MODELS = IMAGE_MODELS + TABLE_MODELS


def _clamp(x: Any) -> bool:
    return x is None or (isinstance(x, list) and len(x) == 2 and all(is_number(v) and v > 0 for v in x) and x[0] <= x[1])


@dataclass(frozen=True)
class ModelParams:
    name: str = setting(choice(*MODELS), "the architecture (tables: logistic or mlp)")
    pretrained: str | None = setting(OPTIONAL_PATH, "a local weights file (resnet18/densenet121); null = random initialisation")


@dataclass(frozen=True)
class TrainParams:
    epochs: int = setting(integer(1, 1000), "training epochs")
    batch_size: int = setting(integer(1, 100000), "training batch size")
    lr: float = setting(number(0, 10, lo_open=True), "learning rate")
    weight_decay: float = setting(number(0, 10), "weight decay")
    focal_gamma: float = setting(number(0, 10), "focal loss gamma (0: cross-entropy)")
    label_smoothing: float = setting(number(0, 1, hi_open=True), "label smoothing")
    pos_weight_clamp: list[float] | None = setting(Spec(_clamp, "null or [low, high] with 0 < low <= high"),
                                                   "multi-label: clamp n_neg/n_pos to [low, high]")
    augment: bool = setting(BOOL, "random translation (and flips) of training images")
    device: str = setting(choice("auto", "cpu", "cuda"), "where training runs")
    amp: bool = setting(BOOL, "bf16 autocast on CUDA")
    channels_last: bool = setting(BOOL, "channels-last memory layout")
    compile: bool = setting(BOOL, "torch.compile the model")
    num_workers: int = setting(integer(0, 64), "data loader workers")
    cpu_threads: int = setting(integer(1, 256), "torch threads on the CPU")


@dataclass(frozen=True)
class ChecksParams:
    allow_chance_level: bool = setting(BOOL, "use a baseline whose validation metrics are at chance level (refused otherwise)")
