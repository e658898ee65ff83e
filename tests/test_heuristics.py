"""Baselines: closed-form last-layer TracIn equals brute-force TracIn restricted to the
last layer's parameters; random projections approximate it; the loss baseline is minus
the loss; cleanlab puts injected label flips at the bottom on the real digits."""
import numpy as np
import pytest
import torch
from torch import nn

from sampleval.config import ESTIMATORS
from sampleval.influence.context import InfluenceContext
from sampleval.influence.runner import run_estimator
from sampleval.influence.last_layer import last_layer_quantities
from sampleval.influence.core import Checkpoint
from sampleval.training.losses import TrainingLoss
from sampleval.training.models import SmallCNN

NEW = ("tracin_last_layer", "tracin_randproj", "loss", "cleanlab")




def _ctx(task="multiclass", **options):
    torch.manual_seed(0)
    model = SmallCNN(1, 3, 4).double()
    ckpts = []
    for epoch, lr in ((1, 0.1), (2, 0.03)):
        for p in model.parameters():
            p.data += 0.2 * torch.randn_like(p)
        ckpts.append(Checkpoint(epoch, lr, {k: v.clone() for k, v in model.state_dict().items()}))
    x, xv = torch.randn(25, 1, 4, 4, dtype=torch.float64), torch.randn(9, 1, 4, 4, dtype=torch.float64)
    if task == "multiclass":
        y, yv = torch.randint(0, 3, (25,)), torch.randint(0, 3, (9,))
    else:
        y, yv = torch.randint(0, 2, (25, 3)).double(), torch.randint(0, 2, (9, 3)).double()
    return InfluenceContext(
        model=model, loss_fn=TrainingLoss(task, 2.0, 0.05), checkpoints=ckpts, final_state=ckpts[-1].state,
        train=(x, y), val=(xv, yv), task=task, n_classes=3, batch_size=8, options=options,
    )


def _last_layer_grads(model, loss_fn, x, y):
    """Per-sample gradients of the final Linear's weight and bias, one backward each."""
    last = model.head[-1]
    out = []
    for i in range(len(x)):
        model.zero_grad()
        loss_fn(model(x[i : i + 1]), y[i : i + 1], reduction="sum").backward()
        out.append(torch.cat([last.weight.grad.flatten(), last.bias.grad.flatten()]).clone())
    return torch.stack(out)


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_tracin_last_layer_equals_brute_force_restricted_tracin(task):
    ctx = _ctx(task)
    expected, expected_self = np.zeros(25), np.zeros(25)
    for c in ctx.checkpoints:
        ctx.model.load_state_dict(c.state)
        g_train = _last_layer_grads(ctx.model, ctx.loss_fn, *ctx.train)
        g_val = _last_layer_grads(ctx.model, ctx.loss_fn, *ctx.val).sum(0)
        expected += c.lr * (g_train @ g_val).numpy()
        expected_self += c.lr * (g_train**2).sum(1).numpy()
    ours = run_estimator("tracin_last_layer", ctx)
    np.testing.assert_allclose(ours["tracin_last_layer"], expected, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(ours["tracin_last_layer_self_influence"], expected_self, rtol=1e-10)


def test_tracin_randproj_approximates_last_layer_tracin():
    ctx = _ctx()
    exact = run_estimator("tracin_last_layer", ctx)
    wide = run_estimator("tracin_randproj", _ctx(tracin_randproj={"dim": 4096}))
    assert np.corrcoef(wide["tracin_randproj"], exact["tracin_last_layer"])[0, 1] >= 0.97
    assert np.corrcoef(wide["tracin_randproj_self_influence"], exact["tracin_last_layer_self_influence"])[0, 1] >= 0.97
    # unbiased: the average over independent projections converges to the exact scores
    runs = []
    for seed in range(40):
        c = _ctx(tracin_randproj={"dim": 64})
        c.seed = seed
        runs.append(run_estimator("tracin_randproj", c)["tracin_randproj"])
    mean = np.mean(runs, axis=0)
    assert np.abs(mean - exact["tracin_last_layer"]).max() <= 0.15 * np.abs(exact["tracin_last_layer"]).max()
    np.testing.assert_array_equal(runs[0], run_estimator("tracin_randproj", _ctx(tracin_randproj={"dim": 64}))["tracin_randproj"])
    assert not np.array_equal(runs[0], runs[1])


def test_loss_baseline_is_minus_the_final_model_loss():
    ctx = _ctx()
    ctx.model.load_state_dict(ctx.final_state)
    with torch.no_grad():
        expected = -ctx.loss_fn(ctx.model(ctx.train[0]), ctx.train[1], reduction="none").numpy()
    np.testing.assert_allclose(run_estimator("loss", ctx)["loss"], expected, rtol=1e-12)


def test_last_layer_estimators_reject_a_model_whose_output_is_not_the_last_linear():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3), nn.Tanh()).double()
    with pytest.raises(ValueError, match="not the model output"):
        last_layer_quantities(model, TrainingLoss("multiclass", 0, 0), torch.randn(4, 1, 4, 4, dtype=torch.float64), torch.zeros(4, dtype=torch.long))


def _digits_with_flips(n_flip=90, seed=0):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    flipped = np.zeros(len(y), bool)
    flipped[rng.choice(len(y), n_flip, replace=False)] = True
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 10, n_flip)) % 10
    return torch.tensor(x / 8.0 - 1.0).reshape(-1, 1, 8, 8).float(), torch.tensor(noisy), flipped


def test_cleanlab_ranks_injected_flips_at_the_bottom_on_digits():
    x, y, flipped = _digits_with_flips()
    ctx = InfluenceContext(
        model=SmallCNN(1, 10, 8), loss_fn=TrainingLoss("multiclass", 2.0, 0.05), checkpoints=[], final_state={},
        train=(x, y), val=(x[:5], y[:5]), task="multiclass", n_classes=10, options={"cleanlab": {"features": "pixels"}},
    )
    out = run_estimator("cleanlab", ctx)
    np.testing.assert_allclose(out["cleanlab"], out["cleanlab_quality"] - 0.5)
    assert ((out["cleanlab_quality"] >= 0) & (out["cleanlab_quality"] <= 1)).all()
    lowest = np.argsort(out["cleanlab"])[: flipped.sum()]
    assert flipped[lowest].mean() >= 0.7  # 5 % of labels flipped; chance would be 0.05
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(flipped, -out["cleanlab"]) >= 0.95


def test_cleanlab_penultimate_features_and_multilabel_run():
    ctx = _ctx(cleanlab={"features": "penultimate", "folds": 3})
    out = run_estimator("cleanlab", ctx)
    assert np.isfinite(out["cleanlab"]).all()
    # multi-label: one-vs-rest logistic regression, cleanlab's multi-label quality score
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(300, 16))
    labels = (feats[:, :3] > 0).astype(np.float64)
    corrupt = rng.choice(300, 20, replace=False)
    labels[corrupt, 0] = 1 - labels[corrupt, 0]
    ml = InfluenceContext(
        model=SmallCNN(1, 3, 4), loss_fn=TrainingLoss("multilabel", 0, 0), checkpoints=[], final_state={},
        train=(torch.tensor(feats).reshape(300, 1, 4, 4), torch.tensor(labels)), val=(torch.zeros(1, 1, 4, 4), torch.zeros(1, 3)),
        task="multilabel", n_classes=3, options={"cleanlab": {"features": "pixels"}},
    )
    q = run_estimator("cleanlab", ml)["cleanlab_quality"]
    bad = np.zeros(300, bool)
    bad[corrupt] = True
    assert q[bad].mean() < q[~bad].mean()
    with pytest.raises(ValueError, match="influence.options.cleanlab.features"):
        run_estimator("cleanlab", _ctx(cleanlab={"features": "pca"}))


def test_registry_and_params_list_the_baselines():
    for name in NEW:
        assert name in ESTIMATORS


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_every_new_estimator_runs_on_a_batchnorm_model(task):
    """Every estimator added here returns finite float64 columns of the right length on a
    model with BatchNorm (eval mode, non-trivial running statistics), for both tasks."""
    ctx = _ctx(task, if_lissa={"depth": 20}, tracin_randproj={"dim": 16}, cleanlab={"folds": 3})
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)).double()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 1, 4, 4, dtype=torch.float64) * 2 + 0.5)
    model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    ctx.model, ctx.final_state, ctx.damping = model, state, 0.5
    ctx.checkpoints = [Checkpoint(1, 0.1, state)]
    names = ("if_cg", "if_lissa", "if_diag", "if_last_layer", "if_last_layer_miscls", *NEW)
    for name in names:
        cols = run_estimator(name, ctx)
        assert name in cols
        for col, values in cols.items():
            assert col == name or col.startswith(name + "_")
            assert values.dtype == np.float64 and values.shape == (25,) and np.isfinite(values).all(), (name, col)
    assert torch.equal(ctx.model.state_dict()["1.running_mean"], state["1.running_mean"])


def test_cleanlab_runs_its_folds_on_ctx_compute(monkeypatch):
    """cleanlab finds where to run its folds where every estimator does (ctx.compute)."""
    import sampleval.influence.heuristics as bl
    from sampleval.runtime.compute import SERIAL

    seen = []
    real = bl.cross_validated_probs

    def spy(*args, **kw):
        seen.append(args[-1])
        return real(*args, **kw)

    monkeypatch.setattr(bl, "cross_validated_probs", spy)
    ctx = _ctx(cleanlab={"features": "pixels", "folds": 2})
    ctx.compute = SERIAL
    with_compute = run_estimator("cleanlab", ctx)
    without = run_estimator("cleanlab", _ctx(cleanlab={"features": "pixels", "folds": 2}))
    assert seen == [SERIAL, None]
    np.testing.assert_array_equal(with_compute["cleanlab"], without["cleanlab"])
