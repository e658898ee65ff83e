import numpy as np
import pytest
import torch

from sampleval.training.metrics import expected_calibration_error, multiclass_metrics
from sampleval.training.loop import TrainConfig, TrainingError, list_checkpoints, load_checkpoint, train


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = (rng.random((n, 1, 8, 8)) * 60 + (y[:, None, None, None] * 60)).astype(np.uint8)
    return x, y


CFG = TrainConfig(epochs=4, batch_size=32, lr=0.01)


def test_checkpoints_hold_weights_lr_epoch_and_best_is_chosen_on_val(tmp_path):
    x, y = _data()
    xv, yv = _data(60, seed=1)
    res = train(x, y, xv, yv, "multiclass", 3, CFG, seed=0, ckpt_dir=tmp_path)
    paths = list_checkpoints(tmp_path)
    assert [p.name for p in paths] == [f"epoch-{e:03d}.pt" for e in range(1, 5)]
    lrs = [load_checkpoint(p)["lr"] for p in paths]
    assert lrs[0] == pytest.approx(0.01) and lrs == sorted(lrs, reverse=True)  # cosine, one lr per epoch
    assert res.best_epoch == min(res.history, key=lambda h: h["val_loss"])["epoch"]
    best = load_checkpoint(paths[res.best_epoch - 1])["model"]
    assert all(torch.equal(best[k], v) for k, v in res.best_state.items())


def test_same_seed_same_result_and_resume_reaches_the_same_result(tmp_path):
    x, y = _data()
    xv, yv = _data(60, seed=1)
    full = train(x, y, xv, yv, "multiclass", 3, CFG, seed=3, ckpt_dir=tmp_path / "full")
    again = train(x, y, xv, yv, "multiclass", 3, CFG, seed=3)
    assert [h["val_loss"] for h in again.history] == [h["val_loss"] for h in full.history]
    # interrupted after epoch 2: keep only the first two checkpoints, then resume
    part = tmp_path / "part"
    part.mkdir()
    for e in (1, 2):
        (part / f"epoch-{e:03d}.pt").write_bytes((tmp_path / "full" / f"epoch-{e:03d}.pt").read_bytes())
    resumed = train(x, y, xv, yv, "multiclass", 3, CFG, seed=3, ckpt_dir=part, resume=True)
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in full.history]
    assert all(torch.equal(resumed.best_state[k], v) for k, v in full.best_state.items())
    # byte for byte, so that DVC sees unchanged outputs (the optimiser's keys come from the
    # loaded checkpoint after a resume: object identity must not reach the pickle)
    for e in (3, 4):
        name = f"epoch-{e:03d}.pt"
        assert (part / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), name


def test_nan_loss_is_a_one_line_error():
    x, y = _data()
    with pytest.raises(TrainingError, match="lower train.lr"):
        train(x, y, x, y, "multiclass", 3, TrainConfig(epochs=1, batch_size=32, lr=1e30), seed=0)


def test_missing_and_corrupt_checkpoints(tmp_path):
    with pytest.raises(TrainingError, match="dvc repro train"):
        list_checkpoints(tmp_path / "nothing")
    bad = tmp_path / "epoch-001.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="cannot be read"):
        load_checkpoint(bad)


def test_ece_hand_computed():
    # two bins used: conf 0.95 (correct) and 0.55, 0.55 (one correct): ECE = 1/3*0.05 + 2/3*|0.5-0.55|
    ece = expected_calibration_error(np.array([0.95, 0.55, 0.55]), np.array([1, 1, 0]), n_bins=10)
    assert ece == pytest.approx(1 / 3 * 0.05 + 2 / 3 * 0.05)


def test_multiclass_metrics_perfect_and_chance():
    logits = np.eye(3)[[0, 1, 2, 0]] * 10
    m = multiclass_metrics(logits, np.array([0, 1, 2, 0]))
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0 and m["macro_auroc"] == 1.0


def test_thresholds_maximise_validation_f1_and_ignore_uncertain():
    from sklearn.metrics import f1_score

    from sampleval.training.metrics import choose_thresholds, multilabel_metrics

    rng = np.random.default_rng(0)
    y = (rng.random((200, 2)) < 0.3).astype(np.int8)
    prob = np.clip(y * 0.3 + rng.random((200, 2)) * 0.7, 0, 1)
    th = choose_thresholds(prob, y)
    for j in range(2):
        best = max(f1_score(y[:, j], prob[:, j] >= t) for t in np.unique(prob[:, j]))
        assert f1_score(y[:, j], prob[:, j] >= th[j]) == pytest.approx(best)
    y_unc = y.copy()
    y_unc[:50, 0] = -1  # ignored entries must not change the metrics of the rest
    logits = np.log(prob / (1 - prob + 1e-9) + 1e-9)
    m_all = multilabel_metrics(logits[50:], y[50:], th, ["a", "b"])
    m_unc = multilabel_metrics(logits, y_unc, th, ["a", "b"])
    assert m_unc["per_label"]["auroc"]["a"] == pytest.approx(m_all["per_label"]["auroc"]["a"])


def test_zero_sample_weight_equals_a_zero_gradient_contribution():
    """Weights 1 reproduce plain training; weight 0 removes exactly that sample's gradient."""
    x, y = _data()
    xv, yv = _data(60, seed=1)
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.01)
    plain = train(x, y, xv, yv, "multiclass", 3, cfg, seed=0)
    ones = train(x, y, xv, yv, "multiclass", 3, cfg, seed=0, sample_weight=np.ones(len(y)))
    np.testing.assert_allclose([h["val_loss"] for h in ones.history], [h["val_loss"] for h in plain.history], rtol=1e-5)
    w = np.ones(len(y))
    w[5] = 0
    x_changed = x.copy()
    x_changed[5] = 255 - x_changed[5]  # the left-out sample's pixels must not matter
    a = train(x, y, xv, yv, "multiclass", 3, cfg, seed=0, sample_weight=w)
    b = train(x_changed, y, xv, yv, "multiclass", 3, cfg, seed=0, sample_weight=w)
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    assert [h["val_loss"] for h in a.history] != [h["val_loss"] for h in plain.history]


def test_channels_last_trains_the_same_model_on_the_cpu():
    """``train.channels_last`` applies on any device: the model is trained in channels-last
    layout, and the result equals the default layout's up to float rounding."""
    x, y = _data()
    xv, yv = _data(60, seed=1)
    ref = train(x, y, xv, yv, "multiclass", 3, CFG, seed=0)
    cl = train(x, y, xv, yv, "multiclass", 3, TrainConfig(epochs=4, batch_size=32, lr=0.01, channels_last=True), seed=0)
    conv2 = cl.model.features[2].weight  # 32 x 16 x 3 x 3: the layouts differ
    assert conv2.is_contiguous(memory_format=torch.channels_last) and not conv2.is_contiguous()
    np.testing.assert_allclose([h["val_loss"] for h in cl.history], [h["val_loss"] for h in ref.history], rtol=1e-4)
