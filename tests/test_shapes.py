"""S-shapedness as seed 003 defines it (sign on constructed S, Z and backslash curves) and
per-validation-sample TracIn against a brute force and the aggregate score."""
import numpy as np
import pytest
import torch
from torch import nn

from sampleval.influence.core import Checkpoint
from sampleval.influence.tracin import tracin_scores
from sampleval.training.losses import TrainingLoss
from sampleval.influence.s_shapedness import aggregate_and_per_sample, flipped_distance_from_centre, per_sample_tracin, s_shapedness

t = np.linspace(0, 1, 501)
S_CURVE = -np.sign(t - 0.5) * np.abs(2 * t - 1) ** 3   # flat middle, steep tails (descending)
Z_CURVE = -np.tanh(12 * (t - 0.5))                     # flat top and bottom, steep middle
BACKSLASH = 1 - 2 * t


def test_sign_on_constructed_curves():
    """Larger = more S-shaped: S > backslash (0) > Z, whatever order the scores come in."""
    rng = np.random.default_rng(0)
    s, z, b = (s_shapedness(rng.permutation(c)) for c in (S_CURVE, Z_CURVE, BACKSLASH))
    assert s > 0.4 and z < -0.4 and b == pytest.approx(0, abs=1e-12)
    # the definition by hand for the S curve: descending order, x = rank / (n - 1)
    y = np.sort(S_CURVE)[::-1]
    fit = np.polyfit(np.linspace(0, 1, len(y)), y, 1)[0]
    assert s == pytest.approx(fit - (y[-1] - y[0]))
    assert s_shapedness(3 * S_CURVE) == pytest.approx(3 * s)  # not normalised, as in the paper
    assert s_shapedness([1.0, 1.0, 1.0]) == 0.0 and s_shapedness([2.0, 1.0]) == 0.0


def test_flipped_distance_from_centre():
    scores = np.arange(11.0)  # descending rank of score k is 10 - k; centre rank 5
    flipped = np.zeros(11, bool)
    flipped[[0, 10]] = True
    assert flipped_distance_from_centre(scores, flipped) == pytest.approx(1.0)
    flipped[:] = False
    flipped[5] = True
    assert flipped_distance_from_centre(scores, flipped) == pytest.approx(0.0)
    assert np.isnan(flipped_distance_from_centre(scores, np.zeros(11, bool)))


def _tiny():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4)).double()
    ckpts = []
    for epoch, lr in ((1, 0.1), (2, 0.05)):
        for p in model.parameters():
            p.data += 0.1 * torch.randn_like(p)
        ckpts.append(Checkpoint(epoch, lr, {k: v.clone() for k, v in model.state_dict().items()}))
    train = torch.randn(10, 1, 4, 4, dtype=torch.float64), torch.randint(0, 4, (10,))
    val = torch.randn(5, 1, 4, 4, dtype=torch.float64), torch.randint(0, 4, (5,))
    return model, ckpts, train, val, TrainingLoss("multiclass", 2.0, 0.05)


def test_per_sample_tracin_matches_brute_force_and_sums_to_the_aggregate():
    model, ckpts, train, val, loss_fn = _tiny()
    per = per_sample_tracin(model, loss_fn, ckpts, train, val, [3, 0], batch_size=4, method="jvp")
    expected = np.zeros((2, 10))
    for c in ckpts:
        model.load_state_dict(c.state)
        for row, j in enumerate([3, 0]):
            model.zero_grad()
            loss_fn(model(val[0][j : j + 1]), val[1][j : j + 1], reduction="sum").backward()
            gv = torch.cat([p.grad.flatten() for p in model.parameters()]).clone()
            for i in range(10):
                model.zero_grad()
                loss_fn(model(train[0][i : i + 1]), train[1][i : i + 1], reduction="sum").backward()
                expected[row, i] += c.lr * float(torch.cat([p.grad.flatten() for p in model.parameters()]) @ gv)
    np.testing.assert_allclose(per, expected, rtol=1e-10, atol=1e-12)
    every = per_sample_tracin(model, loss_fn, ckpts, train, val, range(5), batch_size=4, method="jvp")
    aggregate = tracin_scores(model, loss_fn, ckpts, train, val, batch_size=4, progress=False, method="jvp")["tracin"]
    np.testing.assert_allclose(every.sum(0), aggregate, rtol=1e-9, atol=1e-12)


def test_aggregate_and_per_sample_metrics():
    per_val = np.stack([S_CURVE, Z_CURVE])
    flipped = np.zeros(len(t), bool)
    flipped[:5] = True
    out = aggregate_and_per_sample({"tracin": S_CURVE}, per_val, ["v1", "v2"], flipped)
    assert out["aggregate"]["tracin"] == pytest.approx(s_shapedness(S_CURVE))
    samples = out["per_misclassified_val"]["samples"]
    assert samples["v1"]["index"] > 0 > samples["v2"]["index"]
    assert out["per_misclassified_val"]["summary"]["share_s_shaped"] == 0.5
    assert "larger = more S-shaped" in out["definition"]
