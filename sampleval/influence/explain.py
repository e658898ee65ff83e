"""Per-test-sample explanations: which training samples helped or hurt a test prediction.

For test sample j and training sample i (our sign: positive = helpful, the training
sample lowers the test sample's loss)::

    score_ij = sum_c lr_c * grad L(z_i; theta_c) . grad L(z_j; theta_c)

(TracIn with one test sample), computed as forward-mode directional derivatives of the
training losses along the test sample's gradient, one pass over the training set per
(test sample, checkpoint); no per-sample training gradient is materialised.

The test samples explained are the misclassified ones with the highest loss under the
final model (``n_test`` of them; if fewer are misclassified, the highest-loss correctly
classified ones fill the remaining places). For multi-label data "misclassified" means
any label wrong at probability 0.5.
"""
from __future__ import annotations

import logging
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from sampleval.influence.core import Checkpoint, batches, directional_derivatives, misclassified, summed_gradient
from sampleval.io import save_png
from sampleval.training.loop import predict_logits, to_float

log = logging.getLogger(__name__)

COLUMNS = ["test_id", "train_id", "rank", "score", "kind"]


def _as_tensors(x, y, like: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Test inputs and targets as model-ready tensors matching the training tensors' dtypes."""
    xt = torch.from_numpy(np.array(x)) if isinstance(x, np.ndarray) else x  # copy: prepared arrays are read-only memmaps
    if xt.dtype == torch.uint8:
        xt = to_float(xt)
    xt = xt.to(like[0].dtype)
    yt = torch.from_numpy(np.array(y)) if isinstance(y, np.ndarray) else torch.as_tensor(y)
    yt = yt.to(like[1].dtype)
    return xt, yt


def select_test_samples(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, n_test: int, batch_size: int = 256) -> np.ndarray:
    """Indices of the test samples to explain: misclassified first, each group by loss, highest first."""
    model.eval()
    losses, wrong = [], []
    task = "multilabel" if y.is_floating_point() else "multiclass"
    with torch.no_grad():
        for xb, yb in batches(x, y, batch_size):
            logits = model(xb)
            losses.append(loss_fn(logits, yb, reduction="none").double())
            wrong.append(misclassified(logits, yb, task))
    loss = torch.cat(losses).numpy() if losses else np.zeros(0)
    miss = torch.cat(wrong).numpy() if wrong else np.zeros(0, bool)
    order = np.lexsort((-loss, ~miss))  # last key first: misclassified, then loss descending
    if int(miss.sum()) < n_test:
        log.info("explain: %d misclassified test samples; filling up to %d with the highest-loss others", int(miss.sum()), n_test)
    return order[:n_test]


def test_influence(
    model: nn.Module,
    loss_fn: Callable,
    checkpoints: Sequence[Checkpoint],
    train: tuple[torch.Tensor, torch.Tensor],
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    batch_size: int = 256,
) -> np.ndarray:
    """TracIn matrix (n_test, n_train): ``sum_c lr_c grad L_train_i . grad L_test_j``."""
    out = np.zeros((len(test_x), len(train[0])))
    for ckpt in checkpoints:
        model.load_state_dict(ckpt.state)
        model.eval()
        for j in range(len(test_x)):
            g = summed_gradient(model, loss_fn, test_x[j : j + 1], test_y[j : j + 1])
            out[j] += ckpt.lr * directional_derivatives(model, loss_fn, g, *train, batch_size=batch_size, method="jvp").numpy()
    return out


def explain(
    model_state: dict,
    model: nn.Module,
    loss_fn: Callable,
    checkpoints: Sequence[Checkpoint],
    train: tuple[torch.Tensor, torch.Tensor],
    test_x,
    test_y,
    train_ids: Sequence[str],
    test_ids: Sequence[str],
    top_k: int = 5,
    n_test: int = 6,
    batch_size: int = 256,
) -> pd.DataFrame:
    """Top-``top_k`` helpful and harmful training samples for each of ``n_test`` test samples.

    ``train`` holds model-ready tensors (as :func:`sampleval.influence.core.as_inputs`
    makes them); ``test_x``/``test_y`` may be tensors or numpy arrays (uint8 images are
    scaled like training inputs). Returns one row per (test sample, explaining training
    sample): ``test_id``, ``train_id``, ``rank`` (1 = strongest), ``score`` and ``kind``
    (``helpful``: the largest positive scores, descending; ``harmful``: the most negative,
    ascending). Only strictly positive (negative) scores count as helpful (harmful), so a
    test sample can have fewer than ``top_k`` of a kind. Test samples appear in the order
    they were selected (misclassified, highest loss first).
    """
    if len(train_ids) != len(train[0]):
        raise ValueError(f"train_ids has {len(train_ids)} entries for {len(train[0])} training samples")
    if len(test_ids) != len(test_x):
        raise ValueError(f"test_ids has {len(test_ids)} entries for {len(test_x)} test samples")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if n_test <= 0 or len(test_x) == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(COLUMNS, [str, str, int, float, str])})
    if not checkpoints:
        raise ValueError("explain needs at least one checkpoint")
    tx, ty = _as_tensors(test_x, test_y, train)
    model.load_state_dict(model_state)
    chosen = select_test_samples(model, loss_fn, tx, ty, n_test, batch_size)
    scores = test_influence(model, loss_fn, checkpoints, train, tx[chosen], ty[chosen], batch_size)
    model.load_state_dict(model_state)  # leave the model as it was given
    train_ids = np.asarray(train_ids).astype(str)
    rows = []
    for j, test_index in enumerate(chosen):
        s = scores[j]
        helpful = [i for i in np.argsort(-s, kind="stable")[:top_k] if s[i] > 0]
        harmful = [i for i in np.argsort(s, kind="stable")[:top_k] if s[i] < 0]
        for kind, picked in (("helpful", helpful), ("harmful", harmful)):
            for rank, i in enumerate(picked, start=1):
                rows.append((str(test_ids[test_index]), train_ids[i], rank, float(s[i]), kind))
    return pd.DataFrame(rows, columns=COLUMNS).astype({"rank": int, "score": float})


def _lookup(source, key: str):
    return source(key) if callable(source) else source[key]


def _show(ax, image) -> None:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[1:] == (1, 1) and img.dtype != np.uint8:  # table features (F, 1, 1): a 1 x F strip
        ax.imshow(img[:, 0, 0][None, :], cmap="coolwarm", vmin=-3, vmax=3, aspect="auto", interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _short(sample_id: str, width: int = 14) -> str:
    return sample_id if len(sample_id) <= width else "…" + sample_id[-(width - 1) :]


def plot_explanations(
    df: pd.DataFrame,
    images: Mapping[str, np.ndarray] | Callable[[str], np.ndarray],
    labels: Mapping[str, str] | Callable[[str], str],
    path,
    predictions: Mapping[str, str] | Callable[[str], str] | None = None,
) -> None:
    """PNG grid like the labelling-bias paper's: one row per test sample with the test
    image, then its helpful training images (green titles) and harmful ones (red), each
    titled with its given label and score. ``images`` and ``labels`` map a sample id
    (test or train) to its image ((C, H, W) or (H, W)) and given label; ``predictions``
    optionally maps test ids to the predicted label. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tests = list(dict.fromkeys(df["test_id"])) if len(df) else []
    k_help = int(df.loc[df["kind"] == "helpful", "rank"].max()) if (df["kind"] == "helpful").any() else 0
    k_harm = int(df.loc[df["kind"] == "harmful", "rank"].max()) if (df["kind"] == "harmful").any() else 0
    n_rows, n_cols = max(len(tests), 1), 1 + k_help + k_harm
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.5 * n_cols + 0.4, 1.8 * n_rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if not tests:
        axes[0, 0].text(0.5, 0.5, "no test samples to explain", ha="center", va="center")
    for r, test_id in enumerate(tests):
        ax = axes[r, 0]
        ax.axis("on")
        _show(ax, _lookup(images, test_id))
        title = f"test {_short(test_id)}\nlabel {_lookup(labels, test_id)}"
        if predictions is not None:
            title += f", pred {_lookup(predictions, test_id)}"
        ax.set_title(title, fontsize=7)
        part = df[df["test_id"] == test_id]
        for kind, offset, colour in (("helpful", 1, "tab:green"), ("harmful", 1 + k_help, "tab:red")):
            for row in part[part["kind"] == kind].itertuples():
                ax = axes[r, offset + int(row.rank) - 1]
                ax.axis("on")
                _show(ax, _lookup(images, row.train_id))
                ax.set_title(f"{_short(row.train_id)}\nlabel {_lookup(labels, row.train_id)}  {row.score:+.3g}", fontsize=7, color=colour)
                for spine in ax.spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(1.5)
    if tests:
        fig.suptitle(
            f"Most helpful (green, {k_help}) and most harmful (red, {k_harm}) training samples per test sample (TracIn)", fontsize=9
        )
    fig.tight_layout()
    save_png(fig, path, bbox_inches=None)


def figure_inputs(prepared, model: nn.Module) -> tuple[dict, dict, dict]:
    """``(images, labels, predictions)`` by sample id for :func:`plot_explanations`: the
    training and test images, their given labels as class names, and ``model``'s test
    predictions (multi-label: the findings above probability 0.5, or ``none``)."""
    tr, te = prepared.split("train"), prepared.split("test")

    def name(y) -> str:
        y = np.asarray(y)
        if prepared.task == "multiclass":
            return prepared.classes[int(y)]
        return ",".join(c for c, v in zip(prepared.classes, y) if v > 0) or "none"

    images = {**dict(zip(tr.ids, tr.x)), **dict(zip(te.ids, te.x))}
    labels = {**{i: name(y) for i, y in zip(tr.ids, tr.y)}, **{i: name(y) for i, y in zip(te.ids, te.y)}}
    logits = predict_logits(model, te.x)
    if prepared.task == "multiclass":
        predictions = {i: prepared.classes[int(k)] for i, k in zip(te.ids, logits.argmax(1))}
    else:
        predictions = {i: name(row > 0) for i, row in zip(te.ids, logits)}
    return images, labels, predictions
