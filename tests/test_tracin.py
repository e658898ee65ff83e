"""Our TracIn equals a brute-force sum over checkpoints of lr * per-sample grad . summed val grad,
and agrees with Captum's TracInCP (the reference)."""
import numpy as np
import torch
from torch import nn

from sampleval.influence.tracin import Checkpoint, captum_tracincp_scores, tracin_scores
from sampleval.losses import TrainingLoss


def _tiny():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4)).double()
    ckpts = []
    for epoch, lr in ((1, 0.1), (2, 0.05), (3, 0.01)):
        for p in model.parameters():
            p.data += 0.1 * torch.randn_like(p)
        ckpts.append(Checkpoint(epoch, lr, {k: v.clone() for k, v in model.state_dict().items()}))
    x_tr, y_tr = torch.randn(12, 1, 4, 4, dtype=torch.float64), torch.randint(0, 4, (12,))
    x_va, y_va = torch.randn(7, 1, 4, 4, dtype=torch.float64), torch.randint(0, 4, (7,))
    return model, ckpts, (x_tr, y_tr), (x_va, y_va), TrainingLoss("multiclass", 2.0, 0.05)


def _brute_force(model, ckpts, train, val, loss_fn):
    scores, self_inf = np.zeros(len(train[0])), np.zeros(len(train[0]))
    for c in ckpts:
        model.load_state_dict(c.state)
        model.zero_grad()
        loss_fn(model(val[0]), val[1], reduction="sum").backward()
        g_val = torch.cat([p.grad.flatten() for p in model.parameters()]).clone()
        for i in range(len(train[0])):
            model.zero_grad()
            loss_fn(model(train[0][i : i + 1]), train[1][i : i + 1], reduction="sum").backward()
            g_i = torch.cat([p.grad.flatten() for p in model.parameters()])
            scores[i] += c.lr * float(g_i @ g_val)
            self_inf[i] += c.lr * float(g_i @ g_i)
    return scores, self_inf


def test_fast_tracin_equals_brute_force():
    model, ckpts, train, val, loss_fn = _tiny()
    expected, expected_self = _brute_force(model, ckpts, train, val, loss_fn)
    ours = tracin_scores(model, loss_fn, ckpts, train, val, batch_size=5, progress=False)
    np.testing.assert_allclose(ours["tracin"], expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours["self_influence"], expected_self, rtol=1e-10)
    per_ckpt = sum(ours[f"tracin_epoch_{e:03d}"] for e in (1, 2, 3))
    np.testing.assert_allclose(per_ckpt, ours["tracin"], rtol=1e-12)


def test_fast_tracin_matches_captum_tracincp():
    model, ckpts, train, val, loss_fn = _tiny()
    ours = tracin_scores(model, loss_fn, ckpts, train, val, batch_size=5, progress=False)
    ref = captum_tracincp_scores(model, loss_fn, ckpts, train, val, batch_size=5)
    rel = np.abs(ours["tracin"] - ref["tracincp"]).max() / np.abs(ref["tracincp"]).max()
    assert rel <= 1e-4
    np.testing.assert_allclose(ours["self_influence"], ref["tracincp_self_influence"], rtol=1e-6)


def test_sign_positive_means_helpful():
    """A small gradient step on a high-scoring sample lowers the validation loss."""
    model, ckpts, train, val, loss_fn = _tiny()
    last = [ckpts[-1]]
    scores = tracin_scores(model, loss_fn, last, train, val, progress=False, with_self_influence=False)["tracin"]
    def val_loss_after_step(i):
        model.load_state_dict(last[0].state)
        model.zero_grad()
        loss_fn(model(train[0][i : i + 1]), train[1][i : i + 1], reduction="sum").backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 1e-4 * p.grad
            return float(loss_fn(model(val[0]), val[1], reduction="sum"))
    model.load_state_dict(last[0].state)
    with torch.no_grad():
        base = float(loss_fn(model(val[0]), val[1], reduction="sum"))
    best, worst = int(np.argmax(scores)), int(np.argmin(scores))
    assert val_loss_after_step(best) < base < val_loss_after_step(worst)


def test_central_difference_matches_in_float64():
    model, ckpts, train, val, loss_fn = _tiny()
    jvp_scores = tracin_scores(model, loss_fn, ckpts, train, val, progress=False, with_self_influence=False)["tracin"]
    central = tracin_scores(model, loss_fn, ckpts, train, val, progress=False, with_self_influence=False, method="central")["tracin"]
    assert np.abs(central - jvp_scores).max() / np.abs(jvp_scores).max() <= 1e-4
