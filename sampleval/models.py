"""Model builders: a small CNN for the embedded default data, ResNet-18 and DenseNet-121.

Pretrained weights come only from a local file (``model.pretrained``); ``None`` means
random initialisation. Nothing is ever downloaded.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

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


def build_model(name: str, in_channels: int, n_outputs: int, image_size: int, pretrained: str | None = None) -> nn.Module:
    if name == "small_cnn":
        if pretrained:
            raise ValueError("model.pretrained is only supported for resnet18 and densenet121")
        return SmallCNN(in_channels, n_outputs, image_size)
    import torchvision

    if name == "resnet18":
        model = torchvision.models.resnet18(weights=None)
    elif name == "densenet121":
        model = torchvision.models.densenet121(weights=None)
    else:
        raise ValueError(f"unknown model name {name!r} (allowed: small_cnn, resnet18, densenet121)")
    if pretrained:
        path = Path(pretrained)
        if not path.exists():
            raise FileNotFoundError(f"model.pretrained = {pretrained} does not exist; give a local weights file or null for random init")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        missing, unexpected = model.load_state_dict(state, strict=False)
        log.info("loaded pretrained weights from %s (missing %d, unexpected %d keys)", path, len(missing), len(unexpected))
    else:
        log.info("model %s: random initialisation (model.pretrained is null)", name)
    # Replace the classifier for our number of outputs; inputs are repeated to 3 channels.
    if name == "resnet18":
        model.fc = nn.Linear(model.fc.in_features, n_outputs)
    else:
        model.classifier = nn.Linear(model.classifier.in_features, n_outputs)
    return ChannelAdapter(model, in_channels)


class ChannelAdapter(nn.Module):
    """Repeats grayscale input to the 3 channels an ImageNet model expects."""

    def __init__(self, net: nn.Module, in_channels: int):
        super().__init__()
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
