"""Explanations: the chosen test samples are the misclassified ones with the highest
loss; helpful/harmful lists are sorted, signed and equal brute-force per-test TracIn;
the PNG grid is written atomically."""
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sampleval.influence.explain import COLUMNS, explain, plot_explanations
from sampleval.influence.core import Checkpoint
from sampleval.training.losses import TrainingLoss
from sampleval.training.models import SmallCNN
from sampleval.training.loop import to_float




def _setup():
    torch.manual_seed(0)
    model = SmallCNN(1, 3, 4).double()
    ckpts = []
    for epoch, lr in ((1, 0.1), (2, 0.05), (3, 0.02)):
        for p in model.parameters():
            p.data += 0.2 * torch.randn_like(p)
        ckpts.append(Checkpoint(epoch, lr, {k: v.clone() for k, v in model.state_dict().items()}))
    train = (torch.randn(30, 1, 4, 4, dtype=torch.float64), torch.randint(0, 3, (30,)))
    gen = np.random.default_rng(0)
    test_x = gen.integers(0, 256, size=(12, 1, 4, 4), dtype=np.uint8)  # raw images, scaled inside
    test_y = gen.integers(0, 3, size=12)
    return model, ckpts, train, test_x, test_y, TrainingLoss("multiclass", 2.0, 0.05)


def _flat_grad(model, loss_fn, x, y):
    model.zero_grad()
    loss_fn(model(x), y, reduction="sum").backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()]).clone()


def test_explanations_equal_brute_force_per_test_tracin():
    model, ckpts, train, test_x, test_y, loss_fn = _setup()
    final = ckpts[-1].state
    tx = to_float(torch.from_numpy(test_x)).double()  # the training preprocessing, as explain applies it
    ty = torch.from_numpy(test_y)
    # brute force: which test samples, and the full (test x train) TracIn matrix
    model.load_state_dict(final)
    with torch.no_grad():
        logits = model(tx)
        loss = loss_fn(logits, ty, reduction="none").numpy()
    wrong = (logits.argmax(1) != ty).numpy()
    assert 4 <= wrong.sum() < 12
    expected_tests = np.flatnonzero(wrong)[np.argsort(-loss[wrong])][:4]
    matrix = np.zeros((12, 30))
    for c in ckpts:
        model.load_state_dict(c.state)
        g_train = torch.stack([_flat_grad(model, loss_fn, train[0][i : i + 1], train[1][i : i + 1]) for i in range(30)])
        for j in range(12):
            matrix[j] += c.lr * (g_train @ _flat_grad(model, loss_fn, tx[j : j + 1], ty[j : j + 1])).numpy()

    train_ids = [f"tr{i}" for i in range(30)]
    test_ids = [f"te{j}" for j in range(12)]
    df = explain(final, model, loss_fn, ckpts, train, test_x, test_y, train_ids, test_ids, top_k=3, n_test=4, batch_size=7)
    assert list(df.columns) == COLUMNS
    assert list(dict.fromkeys(df["test_id"])) == [test_ids[j] for j in expected_tests]
    for j in expected_tests:
        part = df[df["test_id"] == test_ids[j]]
        for kind, sign in (("helpful", 1), ("harmful", -1)):
            rows = part[part["kind"] == kind]
            assert list(rows["rank"]) == list(range(1, len(rows) + 1))
            assert (np.sign(rows["score"]) == sign).all()
            assert np.all(np.diff(rows["score"].to_numpy()) * sign <= 0)  # strongest first
            picked = [int(t[2:]) for t in rows["train_id"]]
            np.testing.assert_allclose(rows["score"], matrix[j, picked], rtol=1e-9, atol=1e-12)
            order = np.argsort(-sign * matrix[j])[:3]
            expected_ids = [i for i in order if sign * matrix[j, i] > 0]
            assert picked == expected_ids
    # the model is left with the weights it was given
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, final[k])


def test_explain_with_no_test_samples_returns_empty_frame():
    model, ckpts, train, test_x, test_y, loss_fn = _setup()
    df = explain(ckpts[-1].state, model, loss_fn, ckpts, train, test_x, test_y, list(range(30)), list(range(12)), top_k=3, n_test=0)
    assert list(df.columns) == COLUMNS and len(df) == 0


def test_plot_explanations_writes_png_atomically(tmp_path: Path):
    model, ckpts, train, test_x, test_y, loss_fn = _setup()
    train_ids = [f"tr{i}" for i in range(30)]
    test_ids = [f"te{j}" for j in range(12)]
    df = explain(ckpts[-1].state, model, loss_fn, ckpts, train, test_x, test_y, train_ids, test_ids, top_k=2, n_test=3)
    train_imgs = ((train[0].numpy() + 1) * 127.5).astype(np.uint8)
    images = {**dict(zip(train_ids, train_imgs)), **dict(zip(test_ids, test_x))}
    labels = {**dict(zip(train_ids, train[1].tolist())), **dict(zip(test_ids, test_y.tolist()))}
    out = tmp_path / "plots" / "explanations.png"
    plot_explanations(df, images, labels, out, predictions=lambda t: "?")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["explanations.png"]  # no temporary left behind
    empty = tmp_path / "empty.png"
    plot_explanations(pd.DataFrame(columns=COLUMNS), images, labels, empty)
    assert empty.read_bytes()[:4] == b"\x89PNG"
