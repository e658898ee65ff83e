"""Model builders: output shapes, the last linear layer is the model output, pretrained rules."""
import pytest
import torch
from torch import nn

from sampleval.io import torch_save
from sampleval.training.models import ChannelAdapter, SmallCNN, build_model, last_linear


def test_small_cnn_shapes_and_last_linear_is_the_output():
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 10, 8)
    assert isinstance(model, SmallCNN)
    x = torch.randn(5, 1, 8, 8)
    captured = {}
    last_linear(model).register_forward_hook(lambda m, i, o: captured.update(out=o))
    out = model(x)
    assert out.shape == (5, 10) and torch.equal(out, captured["out"])
    assert last_linear(model).out_features == 10
    assert sum(p.numel() for p in model.parameters()) < 40_000  # "about 30k parameters for 8x8 inputs"


def test_resnet18_adapts_grayscale_and_replaces_the_classifier():
    model = build_model("resnet18", 1, 3, 32)
    assert isinstance(model, ChannelAdapter) and model.repeat == 3
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    assert last_linear(model) is model.net.fc


def test_bad_names_and_pretrained_rules(tmp_path):
    with pytest.raises(ValueError, match="allowed: small_cnn, resnet18, densenet121"):
        build_model("vgg", 1, 2, 32)
    with pytest.raises(ValueError, match="only supported for resnet18 and densenet121"):
        build_model("small_cnn", 1, 2, 8, pretrained="weights.pth")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_model("resnet18", 1, 2, 32, pretrained=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="no nn.Linear"):
        last_linear(nn.Sequential(nn.Conv2d(1, 1, 1)))


def test_pretrained_weights_are_loaded_from_a_local_file(tmp_path):
    torch.manual_seed(1)
    import torchvision

    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch_save(path, {"state_dict": source.state_dict()})
    model = build_model("resnet18", 3, 4, 32, pretrained=str(path))
    torch.testing.assert_close(model.net.conv1.weight, source.conv1.weight)
    assert model.net.fc.out_features == 4  # the classifier is new, for our outputs
