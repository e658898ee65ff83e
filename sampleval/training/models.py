"""Model builders: a small CNN for the embedded default data, ResNet-18 and DenseNet-121
for images (grayscale or RGB), and ``logistic`` / ``mlp`` for tables.

Table inputs arrive as ``(N, F, 1, 1)`` float features (:mod:`sampleval.data.table`):
``logistic`` is ``Flatten -> Linear(F, classes)`` (multinomial logistic regression, the
architecture of the fidelity stage's convex control), ``mlp`` is ``Flatten -> Linear(F, 64)
-> ReLU -> Linear(64, classes)``.

Pretrained weights come only from a local file (``model.pretrained``, a torchvision
state dict read with ``weights_only=True``); ``None`` means random initialisation. Nothing
is ever downloaded.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from sampleval.training.settings import IMAGE_MODELS, LARGE_IMAGE_MODELS, TABLE_MODELS

log = logging.getLogger(__name__)


class SmallCNN(nn.Module):
    """Two conv blocks and a two-layer head; about 30k parameters for 8x8 inputs."""

    def __init__(self, in_channels: int, n_outputs: int, image_size: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = image_size // 2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * side * side, 64), nn.ReLU(), nn.Linear(64, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


MLP_HIDDEN = 64


def build_model(name: str, in_channels: int, n_outputs: int, image_size: int, pretrained: str | None = None) -> nn.Module:
    if pretrained and name not in LARGE_IMAGE_MODELS:
        raise ValueError("model.pretrained is only supported for resnet18 and densenet121")
    if name == "small_cnn":
        return SmallCNN(in_channels, n_outputs, image_size)
    if name in TABLE_MODELS:
        n_in = in_channels * image_size * image_size
        if name == "logistic":
            return nn.Sequential(nn.Flatten(), nn.Linear(n_in, n_outputs))
        return nn.Sequential(nn.Flatten(), nn.Linear(n_in, MLP_HIDDEN), nn.ReLU(), nn.Linear(MLP_HIDDEN, n_outputs))
    import torchvision

    if name == "resnet18":
        model = torchvision.models.resnet18(weights=None)
    elif name == "densenet121":
        model = torchvision.models.densenet121(weights=None)
    else:
        raise ValueError(f"unknown model name {name!r} (allowed: {', '.join(IMAGE_MODELS + TABLE_MODELS)})")
    if pretrained:
        load_pretrained(model, name, pretrained)
    else:
        log.info("model %s: random initialisation (model.pretrained is null)", name)
    # Replace the classifier for our number of outputs; inputs are repeated to 3 channels.
    if name == "resnet18":
        model.fc = nn.Linear(model.fc.in_features, n_outputs)
    else:
        model.classifier = nn.Linear(model.classifier.in_features, n_outputs)
    return ChannelAdapter(model, in_channels)


def load_pretrained(model: nn.Module, name: str, pretrained: str) -> None:
    """Load a local torchvision state dict (e.g. ``resnet18-f37072fd.pth``) into ``model``
    (still with its ImageNet classifier). Read with ``weights_only=True`` (never unpickled);
    a file of another architecture fails instead of leaving the model silently random."""
    path = Path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(f"model.pretrained = {pretrained} does not exist; give a local weights file (README: Use your own data) or null for random init")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"model.pretrained = {pretrained} is not a torch state dict readable with weights_only=True ({type(exc).__name__}); "
                         "use the torchvision .pth file itself") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"model.pretrained = {pretrained} holds a {type(state).__name__}, not a state dict; use the torchvision .pth file")
    if name == "densenet121":  # torchvision's published file uses the old key names ("norm.1"); its loader renames them so
        import re

        pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
        state = {(m.group(1) + m.group(2)) if (m := pattern.match(k)) else k: v for k, v in state.items()}
    own = model.state_dict()
    matching = [k for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)]
    if not matching:
        raise ValueError(f"model.pretrained = {pretrained}: none of its {len(state)} tensors fits {name}; is it the {name} weights file?")
    # A grayscale first convolution (weights for 1 input channel) is summed-over-RGB compatible: repeat it.
    first = next((k for k, v in own.items() if v.ndim == 4), None)
    if first in state and state[first].ndim == 4 and state[first].shape[1] == 1 and own[first].shape[1] == 3:
        state = dict(state)
        state[first] = state[first].repeat(1, 3, 1, 1) / 3.0
    missing, unexpected = model.load_state_dict({k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False)
    body = [k for k in missing if not k.startswith(("fc.", "classifier."))]  # the classifier is replaced anyway
    if body:
        raise ValueError(f"model.pretrained = {pretrained} lacks {len(body)} of {name}'s tensors (e.g. {body[0]}); use torchvision's {name} weights file")
    log.info("loaded pretrained weights from %s (%d tensors; missing %d, ignored %d)", path, len(own) - len(missing), len(missing),
             len(state) - (len(own) - len(missing)))


class ChannelAdapter(nn.Module):
    """Repeats grayscale input to the 3 channels an ImageNet model expects (RGB passes through)."""

    def __init__(self, net: nn.Module, in_channels: int):
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"resnet18/densenet121 take grayscale (1) or RGB (3) images, not {in_channels} channels")
        self.net = net
        self.repeat = 3 if in_channels == 1 else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.repeat != 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net(x)


def last_linear(model: nn.Module) -> nn.Linear:
    """The final linear layer (for last-layer influence estimators)."""
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    if last is None:
        raise ValueError("model has no nn.Linear layer")
    return last
