"""Our TracIn equals a brute-force sum over checkpoints of lr * per-sample grad . summed val grad,
and agrees with Captum's TracInCP (the reference), with either directional-derivative method,
from float tensors or streamed from uint8 images."""
import numpy as np
import pytest
import torch
from torch import nn

from sampleval.influence.core import Checkpoint, Samples, as_inputs, batches, directional_derivatives, full_float32
from sampleval.influence.tracin import captum_tracincp_scores, self_influence_scores, tracin_scores
from sampleval.training.losses import TrainingLoss


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


@pytest.mark.parametrize("method, rtol", [("jvp", 1e-10), ("central", 1e-6)])
def test_fast_tracin_equals_brute_force(method, rtol):
    model, ckpts, train, val, loss_fn = _tiny()
    expected, expected_self = _brute_force(model, ckpts, train, val, loss_fn)
    ours = tracin_scores(model, loss_fn, ckpts, train, val, batch_size=5, progress=False, method=method)
    np.testing.assert_allclose(ours["tracin"], expected, rtol=rtol, atol=rtol * np.abs(expected).max())
    per_ckpt = sum(ours[f"tracin_epoch_{e:03d}"] for e in (1, 2, 3))
    np.testing.assert_allclose(per_ckpt, ours["tracin"], rtol=1e-12)
    np.testing.assert_allclose(self_influence_scores(model, loss_fn, ckpts, train, batch_size=5, progress=False), expected_self, rtol=1e-10)


@pytest.mark.parametrize("method", ["central", "jvp"])
def test_fast_tracin_matches_captum_tracincp(method):
    """The issue's bar in float64: relative error <= 1e-4, Spearman >= 0.999."""
    from scipy.stats import spearmanr

    model, ckpts, train, val, loss_fn = _tiny()
    ours = tracin_scores(model, loss_fn, ckpts, train, val, batch_size=5, progress=False, method=method)
    ref = captum_tracincp_scores(model, loss_fn, ckpts, train, val, batch_size=5)
    rel = np.abs(ours["tracin"] - ref["tracincp"]).max() / np.abs(ref["tracincp"]).max()
    assert rel <= 1e-4
    assert spearmanr(ours["tracin"], ref["tracincp"]).statistic >= 0.999
    np.testing.assert_allclose(self_influence_scores(model, loss_fn, ckpts, train, batch_size=5, progress=False), ref["tracincp_self_influence"], rtol=1e-6)


def test_streaming_from_uint8_equals_materialised_tensors():
    """Samples streams uint8 batches (no float copy of the split) to the same scores."""
    model, ckpts, _, _, loss_fn = _tiny()
    model.float()
    ckpts = [Checkpoint(c.epoch, c.lr, {k: v.float() for k, v in c.state.items()}) for c in ckpts]
    rng = np.random.default_rng(0)
    imgs, labels = rng.integers(0, 256, (23, 1, 4, 4), dtype=np.uint8), rng.integers(0, 4, 23)
    train, val = Samples(imgs[:16], labels[:16], "multiclass"), Samples(imgs[16:], labels[16:], "multiclass")
    streamed = tracin_scores(model, loss_fn, ckpts, train, val, batch_size=5, progress=False)
    assert train._tensors is None and val._tensors is None  # never materialised
    x, y = train  # unpacks like a tuple, into the model-ready tensors
    assert x.dtype == torch.float32 and x.shape == (16, 1, 4, 4) and float(x.min()) >= -1 and float(x.max()) <= 1
    dense = tracin_scores(model, loss_fn, ckpts, as_inputs(imgs[:16], labels[:16], "multiclass"), as_inputs(imgs[16:], labels[16:], "multiclass"),
                          batch_size=5, progress=False)
    np.testing.assert_array_equal(streamed["tracin"], dense["tracin"])
    assert train.n == 16 and len(train) == 2


def test_full_float32_restores_tf32_flags():
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with full_float32():
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before


def test_sign_positive_means_helpful():
    """A small gradient step on a high-scoring sample lowers the validation loss."""
    model, ckpts, train, val, loss_fn = _tiny()
    last = [ckpts[-1]]
    scores = tracin_scores(model, loss_fn, last, train, val, progress=False)["tracin"]
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


def test_central_difference_matches_jvp_in_float64():
    model, ckpts, train, val, loss_fn = _tiny()
    jvp_scores = tracin_scores(model, loss_fn, ckpts, train, val, progress=False, method="jvp")["tracin"]
    central = tracin_scores(model, loss_fn, ckpts, train, val, progress=False, method="central")["tracin"]
    assert np.abs(central - jvp_scores).max() / np.abs(jvp_scores).max() <= 1e-4


def test_unknown_method_is_named():
    model, ckpts, train, val, loss_fn = _tiny()
    with pytest.raises(ValueError, match="central, jvp"):
        tracin_scores(model, loss_fn, ckpts, train, val, progress=False, method="forward")


def test_central_difference_restores_the_model_bit_for_bit():
    """The central difference moves the parameters in place; afterwards (also after an error
    mid-pass) they are exactly the originals, the train/eval mode is as before, and BatchNorm
    running statistics were read, never updated."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 4))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss_fn = TrainingLoss("multiclass", 2.0, 0.05)
    x, y = torch.randn(10, 1, 4, 4), torch.randint(0, 4, (10,))
    direction = {k: torch.randn_like(p) for k, p in model.named_parameters()}
    directional_derivatives(model, loss_fn, direction, x, y, batch_size=4)
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k

    def failing_loss(logits, target, reduction="none"):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        directional_derivatives(model, failing_loss, direction, x, y, batch_size=4)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("n, batch_size, sizes", [(270, 256, [135, 135]), (256, 256, [256]), (7, 3, [3, 3, 1]), (10, 4, [4, 4, 2]), (100_000, 256, [256] * 390 + [160]), (1, 256, [1]), (0, 8, [])])
def testbatches_have_near_equal_sizes(n, batch_size, sizes):
    x, y = torch.arange(n, dtype=torch.float32).reshape(n, 1), torch.arange(n)
    got = list(batches(x, y, batch_size))
    assert [len(b[0]) for b in got] == sizes
    assert [int(i) for b in got for i in b[1]] == list(range(n))  # every sample once, in order


def test_channels_last_context_gives_the_same_scores_and_captum_still_runs():
    """``train.channels_last`` puts the streaming estimators' model in channels-last layout:
    the scores equal the default layout's (float64: to rounding, 1e-6 for the central
    difference, whose step magnifies rounding); Captum, which cannot read
    channels-last gradients, gets the default layout back."""
    from sampleval.influence.context import InfluenceContext
    from sampleval.influence.runner import run_estimator

    model, ckpts, train, val, loss_fn = _tiny()
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 2, 3, padding=1), nn.Flatten(), nn.Linear(32, 4))
    model = model.double().eval()
    ckpts = [Checkpoint(c, lr, {k: v + 0.1 * c * torch.ones_like(v) if v.is_floating_point() else v for k, v in model.state_dict().items()})
             for c, lr in ((1, 0.1), (2, 0.05))]
    runs = {}
    for channels_last in (False, True):
        ctx = InfluenceContext(model=model, loss_fn=loss_fn, checkpoints=ckpts, final_state=ckpts[-1].state, train=train, val=val,
                               task="multiclass", n_classes=4, batch_size=5, channels_last=channels_last,
                               options={"tracin": {"burn_in": 0}})  # two checkpoints: keep both (compared with Captum)
        runs[channels_last] = {name: run_estimator(name, ctx)[name] for name in ("tracin", "self_influence")}
        assert model[3].weight.is_contiguous(memory_format=torch.channels_last) == channels_last
        ref = run_estimator("tracincp", ctx)["tracincp"]
        assert model[3].weight.is_contiguous()
    for name, rtol in (("tracin", 1e-6), ("self_influence", 1e-9)):  # a difference quotient magnifies rounding
        np.testing.assert_allclose(runs[True][name], runs[False][name], rtol=rtol, atol=rtol * np.abs(runs[False][name]).max())
    assert np.abs(runs[True]["tracin"] - ref).max() <= 1e-4 * np.abs(ref).max()


def test_tracin_checkpoint_options_and_diagnostics():
    """``influence.options.tracin`` picks the checkpoints the ``tracin`` column sums over;
    the per-checkpoint columns cover all of them; the diagnostics name the epochs used."""
    from sampleval.influence.context import InfluenceContext
    from sampleval.influence.runner import run_estimator

    model, ckpts, train, val, loss_fn = _tiny()
    ckpts = [*ckpts, Checkpoint(len(ckpts) + 1, 0.01, ckpts[-1].state)]

    def run(options, final_epoch=None):
        ctx = InfluenceContext(model=model, loss_fn=loss_fn, checkpoints=ckpts, final_state=ckpts[-1].state, train=train, val=val,
                               task="multiclass", n_classes=4, batch_size=5, final_epoch=final_epoch, options={"tracin": options})
        return run_estimator("tracin", ctx), ctx.diagnostics["tracin"]

    full, diag = run({"burn_in": 0})
    epochs = [c.epoch for c in ckpts]
    assert diag["epochs_used"] == epochs and diag["checkpoints"] == "all" and diag["method"] == "central"
    burn, diag = run({"burn_in": 1})
    assert diag["epochs_used"] == epochs[1:]
    np.testing.assert_allclose(burn["tracin"], full["tracin"] - full["tracin_epoch_001"], rtol=1e-12, atol=1e-12 * np.abs(full["tracin"]).max())
    assert all(np.array_equal(burn[k], full[k]) for k in full if k.startswith("tracin_epoch_"))
    upto, diag = run({"checkpoints": "up_to_selected", "burn_in": 0}, final_epoch=epochs[-2])
    assert diag["epochs_used"] == epochs[:-1] and diag["selected_epoch"] == epochs[-2]
    with pytest.raises(ValueError, match="influence.options.tracin.burn_in = -1"):
        run({"burn_in": -1})
