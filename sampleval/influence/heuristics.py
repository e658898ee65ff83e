"""Cheap baselines and last-layer approximations, all with our sign (positive = helpful).

- ``tracin_last_layer``: TracIn restricted to the final ``nn.Linear`` (weights and bias).
  With penultimate features ``phi~_i = [phi_i, 1]`` and output gradients
  ``delta_i = dL_i/dz_i`` the per-sample last-layer gradient is the outer product
  ``delta_i phi~_i^T``, so in closed form::

      tracin_last_layer_i = sum_c lr_c * delta_i^T (sum_v delta_v phi~_v^T) phi~_i

  Extra column ``tracin_last_layer_self_influence = sum_c lr_c |delta_i|^2 |phi~_i|^2``.
- ``tracin_randproj``: the same last-layer TracIn on Gaussian random projections of the
  per-sample last-layer gradients, ``R^T vec(delta_i phi~_i^T)`` with a seeded
  ``R ~ N(0, 1/d)`` of ``d = influence.options.tracin_randproj.dim`` (default 128) columns per checkpoint
  (``E[R R^T] = I``, so the projected dot products are unbiased). This is the
  representation TracIn's authors propose for storing every training sample's gradient
  compactly. Captum's ``TracInCPFastRandProj`` is not used: it builds an ``annoy``
  nearest-neighbour index at construction and ``annoy`` is not a dependency.
  Extra column ``tracin_randproj_self_influence``.
- ``loss``: minus each sample's training loss under the final model (low-loss samples
  rank as helpful, high-loss ones, often mislabelled, as harmful).
- ``cleanlab``: cleanlab's label-quality score (``self_confidence`` by default) from
  K-fold cross-validated predicted probabilities of a scikit-learn logistic regression (the
  one out-of-fold engine, :mod:`sampleval.training.out_of_fold`: a class with fewer training
  samples than ``influence.options.cleanlab.folds`` is refused, naming the key),
  centred: ``cleanlab = quality - 0.5`` (quality in [0, 1]; low quality, a likely label
  error, is negative = harmful). Extra column ``cleanlab_quality`` holds the raw score.
  Features (``influence.options.cleanlab.features``): ``pixels`` (flattened model inputs),
  ``penultimate`` (the final model's penultimate-layer features; these have seen the
  training labels, so flagged samples are those the network could not fit) or ``auto``
  (default: pixels up to 4,096 input values, penultimate beyond). Multi-label tasks use
  a one-vs-rest logistic regression and ``cleanlab.multilabel_classification``.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from sampleval.influence.core import batches, load_final, record
from sampleval.influence.last_layer import LastLayer, last_layer_quantities

log = logging.getLogger(__name__)


def _checkpoint_quantities(ctx, ckpt):
    model = ctx.model
    model.load_state_dict(ckpt.state)
    model.eval()
    train_q = last_layer_quantities(model, ctx.loss_fn, *ctx.train, batch_size=ctx.batch_size)
    val_q = last_layer_quantities(model, ctx.loss_fn, *ctx.val, batch_size=ctx.batch_size)
    return train_q, val_q


def estimate_tracin_last_layer(ctx) -> dict[str, np.ndarray]:
    """Registry entry: last-layer TracIn over the checkpoints, in closed form."""
    if not ctx.checkpoints:
        raise ValueError("tracin_last_layer needs at least one checkpoint")
    n = len(ctx.train[0])
    total = torch.zeros(n, dtype=torch.float64)
    self_inf = torch.zeros(n, dtype=torch.float64)
    for ckpt in ctx.checkpoints:
        train_q, val_q = _checkpoint_quantities(ctx, ckpt)
        total += ckpt.lr * train_q.dots(val_q.summed_gradient())
        self_inf += ckpt.lr * train_q.grad_sq_norms().double()
    record(ctx, "tracin_last_layer", {"method": "closed form", "epochs_used": [c.epoch for c in ctx.checkpoints]})
    return {"tracin_last_layer": total.numpy(), "tracin_last_layer_self_influence": self_inf.numpy()}


def project_last_layer(q: LastLayer, proj: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """``R^T vec(delta_i phi~_i^T)`` for every sample; ``proj`` is (K*(D+1), d), row-major
    over (K, D+1) like the flattened ``[W | b]``."""
    k, d1 = q.out_grads.shape[1], q.features.shape[1]
    r3 = proj.reshape(k, d1, -1)
    out = []
    for start in range(0, len(q.features), batch_size):
        f = q.features[start : start + batch_size].to(proj.dtype)
        g = q.out_grads[start : start + batch_size].to(proj.dtype)
        # sum_a g_ia * (phi~_i^T R[a]) without forming the (B, K*(D+1)) outer products
        out.append(torch.einsum("ia,iad->id", g, torch.einsum("ip,apd->iad", f, r3)))
    return torch.cat(out)


def estimate_tracin_randproj(ctx) -> dict[str, np.ndarray]:
    """Registry entry: last-layer TracIn on seeded Gaussian random projections."""
    if not ctx.checkpoints:
        raise ValueError("tracin_randproj needs at least one checkpoint")
    dim = ctx.options_of("tracin_randproj").dim
    n = len(ctx.train[0])
    total = torch.zeros(n, dtype=torch.float64)
    self_inf = torch.zeros(n, dtype=torch.float64)
    for c, ckpt in enumerate(ctx.checkpoints):
        train_q, val_q = _checkpoint_quantities(ctx, ckpt)
        p = train_q.out_grads.shape[1] * train_q.features.shape[1]
        gen = torch.Generator().manual_seed(int(ctx.seed) * 100_003 + c)
        proj = torch.randn(p, dim, generator=gen, dtype=torch.float64) / dim**0.5
        g_val = val_q.summed_gradient().double().reshape(1, -1) @ proj  # (1, d)
        z = project_last_layer(train_q, proj)
        total += ckpt.lr * (z @ g_val.T).squeeze(1)
        self_inf += ckpt.lr * z.pow(2).sum(1)
    record(ctx, "tracin_randproj", {"dim": dim, "epochs_used": [c.epoch for c in ctx.checkpoints]})
    return {"tracin_randproj": total.numpy(), "tracin_randproj_self_influence": self_inf.numpy()}


def estimate_loss(ctx) -> dict[str, np.ndarray]:
    """Registry entry: minus the per-sample training loss under the final model."""
    model = load_final(ctx)
    out = []
    with torch.no_grad():
        for xb, yb in batches(*ctx.train, ctx.batch_size):
            out.append(ctx.loss_fn(model(xb), yb, reduction="none").double())
    record(ctx, "loss", {"model": f"final (epoch {ctx.final_epoch})" if ctx.final_epoch is not None else "final"})
    return {"loss": -torch.cat(out).numpy()}


def _logreg(task: str):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    lr = LogisticRegression(max_iter=2000)
    return make_pipeline(StandardScaler(), OneVsRestClassifier(lr) if task == "multilabel" else lr)


def cross_validated_probs(features: np.ndarray, labels: np.ndarray, task: str, n_classes: int, folds: int = 5, seed: int = 0, compute=None) -> np.ndarray:
    """Out-of-fold predicted probabilities (n, n_classes) of a standardised logistic regression,
    from the one out-of-fold engine (:mod:`sampleval.training.out_of_fold`: its fold rule, the folds
    as jobs of ``compute``, default here one after another); columns of classes absent from
    ``labels`` stay 0. The numbers equal ``cross_val_predict``'s (tests/test_fanout.py)."""
    from sampleval.runtime.compute import SERIAL
    from sampleval.training.out_of_fold import ClassifierFitPredict, out_of_fold_probs

    key = "influence.options.cleanlab.folds"
    if task == "multilabel":
        fit_predict = ClassifierFitPredict(_logreg(task), features, labels, n_classes)
        return out_of_fold_probs(labels, n_classes, fit_predict, folds, seed, compute or SERIAL, key, stratify=False)[0]
    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError("cleanlab needs at least two classes among the training labels")
    fit_labels = np.searchsorted(present, labels)  # 0..m-1 over the classes present, as cross_val_predict encodes them
    fit_predict = ClassifierFitPredict(_logreg(task), features, fit_labels, n_classes, present)
    return out_of_fold_probs(fit_labels, n_classes, fit_predict, folds, seed, compute or SERIAL, key)[0]


def estimate_cleanlab(ctx) -> dict[str, np.ndarray]:
    """Registry entry: cleanlab label quality from cross-validated logistic regression, minus 0.5."""
    import cleanlab.multilabel_classification.rank
    import cleanlab.rank

    x, y = ctx.train
    opts = ctx.options_of("cleanlab")
    choice = opts.features
    if choice == "auto":
        choice = "pixels" if x[0].numel() <= 4096 else "penultimate"
    if choice == "pixels":
        features = x.reshape(len(x), -1).double().numpy()
    elif choice == "penultimate":
        q = last_layer_quantities(load_final(ctx), ctx.loss_fn, x, y, batch_size=ctx.batch_size)
        features = q.features.double().numpy()
        features = features[:, :-1] if np.all(features[:, -1] == 1) else features  # drop the bias column
    folds, method = opts.folds, opts.method
    compute = ctx.compute  # a sampleval.runtime.compute.Compute runs the folds as executor jobs; None: here
    if ctx.task == "multilabel":
        labels = (y.numpy() > 0.5).astype(int)
        probs = cross_validated_probs(features, labels, "multilabel", ctx.n_classes, folds, int(ctx.seed), compute)
        label_lists = [list(np.flatnonzero(row)) for row in labels]
        quality = cleanlab.multilabel_classification.rank.get_label_quality_scores(label_lists, probs, method=method)
    elif ctx.task == "multiclass":
        labels = y.numpy().astype(int)
        probs = cross_validated_probs(features, labels, "multiclass", ctx.n_classes, folds, int(ctx.seed), compute)
        quality = cleanlab.rank.get_label_quality_scores(labels, probs, method=method)
    else:
        raise ValueError(f"cleanlab supports multiclass and multilabel tasks, not {ctx.task!r}")
    record(ctx, "cleanlab", {"features": choice, "dims": int(features.shape[1]), "folds": folds, "method": method, "classifier": "logistic regression"})
    quality = np.asarray(quality, dtype=np.float64)
    return {"cleanlab": quality - 0.5, "cleanlab_quality": quality}
