import math

import pytest
import torch
import torch.nn.functional as F

from sampleval.training.losses import clamped_pos_weight, focal_loss, sigmoid_focal_loss


def test_gamma_zero_is_cross_entropy_with_smoothing():
    torch.manual_seed(0)
    logits = torch.randn(7, 5, dtype=torch.float64)
    y = torch.randint(0, 5, (7,))
    for eps in (0.0, 0.05, 0.3):
        ours = focal_loss(logits, y, gamma=0.0, label_smoothing=eps, reduction="none")
        ref = F.cross_entropy(logits, y, label_smoothing=eps, reduction="none")
        assert torch.allclose(ours, ref, atol=1e-12)


def test_focal_hand_computed_value():
    # two classes, logits (0, ln 3): p = (1/4, 3/4); target 1, gamma 2, no smoothing
    logits = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)
    loss = focal_loss(logits, torch.tensor([1]), gamma=2.0, label_smoothing=0.0, reduction="sum")
    expected = -((1 - 0.75) ** 2) * math.log(0.75)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    # with smoothing 0.1 over K=2: q = (0.05, 0.95)
    loss = focal_loss(logits, torch.tensor([1]), gamma=2.0, label_smoothing=0.1, reduction="sum")
    expected = -(0.95 * 0.25**2 * math.log(0.75) + 0.05 * 0.75**2 * math.log(0.25))
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_focal_downweights_easy_examples():
    easy = torch.tensor([[5.0, 0.0]])
    hard = torch.tensor([[0.2, 0.0]])
    y = torch.tensor([0])
    ratio_easy = focal_loss(easy, y, 2.0) / focal_loss(easy, y, 0.0)
    ratio_hard = focal_loss(hard, y, 2.0) / focal_loss(hard, y, 0.0)
    assert ratio_easy < 0.01 < ratio_hard


def test_reductions_agree():
    logits, y = torch.randn(6, 4), torch.randint(0, 4, (6,))
    per = focal_loss(logits, y, 2.0, 0.05, "none")
    assert torch.allclose(per.sum(), focal_loss(logits, y, 2.0, 0.05, "sum"))
    assert torch.allclose(per.mean(), focal_loss(logits, y, 2.0, 0.05, "mean"))
    with pytest.raises(ValueError, match="reduction"):
        focal_loss(logits, y, reduction="avg")


def test_sigmoid_focal_gamma_zero_is_bce_with_targets_smoothed_toward_half():
    torch.manual_seed(1)
    logits = torch.randn(5, 3, dtype=torch.float64)
    y = (torch.rand(5, 3) > 0.5).double()
    eps = 0.1
    ours = sigmoid_focal_loss(logits, y, gamma=0.0, label_smoothing=eps, reduction="none")
    ref = F.binary_cross_entropy_with_logits(logits, y * (1 - eps) + 0.5 * eps, reduction="none").sum(1)
    assert torch.allclose(ours, ref, atol=1e-12)


def test_sigmoid_pos_weight_and_mask():
    logits = torch.zeros(1, 2, dtype=torch.float64)
    y = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    base = sigmoid_focal_loss(logits, y, 0.0, 0.0, reduction="none")
    weighted = sigmoid_focal_loss(logits, y, 0.0, 0.0, pos_weight=torch.tensor([3.0, 1.0], dtype=torch.float64), reduction="none")
    assert weighted.item() == pytest.approx(base.item() * 2.0)  # (3 + 1) / (1 + 1)
    masked = sigmoid_focal_loss(logits, y, 0.0, 0.0, mask=torch.tensor([[1.0, 0.0]], dtype=torch.float64), reduction="none")
    assert masked.item() == pytest.approx(base.item() / 2)


def test_clamped_pos_weight():
    y = torch.tensor([[1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=torch.float32)
    w = clamped_pos_weight(y, 2.0, 8.0)
    assert w.tolist() == [2.0, 2.0, 8.0]  # 3/2 -> 2 (clamped), 3/2 -> 2, none positive -> high
