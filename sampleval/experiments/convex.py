"""The convex control of the fidelity stage: exact leave-one-out on multinomial logistic
regression against the pipeline's own influence-function estimator (``if_cg``, exact
Hessian). Strongly convex and fit to convergence, so the influence function must predict
retraining almost exactly: a check of the estimator code path without training noise.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from sampleval.influence.registry import IfCgOptions
from sampleval.influence.context import InfluenceContext
from sampleval.influence.runner import run_estimator
from sampleval.training.losses import TrainingLoss
from sampleval.training.loop import to_float

log = logging.getLogger(__name__)


def _fit_logistic(x, y, weights, damping, init: dict, grad_tol=1e-6) -> nn.Module:
    """Minimise ``sum_i weights_i CE_i / n + damping / 2 |theta|^2`` (bias included) by
    L-BFGS in float64 from the ``init`` state of ``Flatten -> Linear``; ``n = len(x)``
    whatever the weights, so a zero weight leaves one sample out of the mean objective with
    ``1/n`` kept (the perturbation an influence function linearises)."""
    loss = TrainingLoss("multiclass", 0.0, 0.0)
    n_out, n_in = init["1.weight"].shape
    model = nn.Sequential(nn.Flatten(), nn.Linear(n_in, n_out)).double()
    model.load_state_dict(init)
    n = len(x)
    opt = torch.optim.LBFGS(
        model.parameters(), lr=1, max_iter=1000, tolerance_grad=1e-12, tolerance_change=1e-15, history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        obj = (loss(model(x), y, reduction="none") * weights).sum() / n
        obj = obj + damping / 2 * sum((p**2).sum() for p in model.parameters())
        obj.backward()
        return obj

    for _ in range(10):
        opt.step(closure)
        closure()
        g = float(torch.cat([p.grad.flatten() for p in model.parameters()]).norm())
        if g < grad_tol:
            break
    else:
        log.warning("convex leave-one-out: L-BFGS stopped at gradient norm %.2e (wanted < %.0e)", g, grad_tol)
    return model


def _checked_inputs(x_train, y_train, x_val, y_val, n_classes: int, indices: Sequence[int]) -> tuple:
    """``(x, y, xv, yv, idx)``: float64 inputs scaled like training inputs, long labels and the
    leave-one-out indices as ints, after checking the indices and labels are in range."""
    x = to_float(torch.as_tensor(np.asarray(x_train))).double()
    xv = to_float(torch.as_tensor(np.asarray(x_val))).double()
    y = torch.as_tensor(np.asarray(y_train), dtype=torch.long)
    yv = torch.as_tensor(np.asarray(y_val), dtype=torch.long)
    n = len(x)
    idx = [int(i) for i in indices]
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise ValueError(f"leave-one-out index {bad[0]} is outside 0..{n - 1}")
    if int(max(y.max(), yv.max())) >= n_classes:
        raise ValueError(f"labels go up to {int(max(y.max(), yv.max()))} but n_classes = {n_classes}")
    return x, y, xv, yv, idx


def convex_leave_one_out(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    indices: Sequence[int],
    damping: float = 0.01,
) -> pd.DataFrame:
    """Multinomial logistic regression (one nn.Linear on flattened pixels scaled like training inputs,
    cross-entropy, L2 = damping so the objective is strongly convex), fit to convergence in float64
    with L-BFGS; influence-function predictions from `sampleval.influence.hessian` (if_cg with the
    exact Hessian, damping matching the L2 term) against actual retraining without each index
    (warm-started L-BFGS from the full solution). Returns rows: index, predicted, actual
    (actual = summed validation loss without the point minus with it; predicted on the same scale,
    i.e. score / n with our sign convention so that predicted ≈ actual).

    The objective is ``mean_i CE_i + damping / 2 |theta|^2`` (weights and bias), so
    ``H + damping I`` in ``if_cg`` is its exact Hessian. "Without the point" zeroes that
    sample's term in the mean with the ``1/n`` kept, the perturbation the influence
    function linearises (``eps = -1/n``); the remaining gap is second order in ``1/n``.
    Inputs are uint8 images ``(N, C, H, W)`` scaled by :func:`~sampleval.training.loop.to_float`."""
    if not damping > 0:
        raise ValueError(f"damping must be positive (it is the L2 term that makes the objective strongly convex), got {damping}")
    x, y, xv, yv, idx = _checked_inputs(x_train, y_train, x_val, y_val, n_classes, indices)
    n = len(x)
    loss = TrainingLoss("multiclass", 0.0, 0.0)
    zero = {"1.weight": torch.zeros(n_classes, x[0].numel(), dtype=torch.float64), "1.bias": torch.zeros(n_classes, dtype=torch.float64)}
    model = _fit_logistic(x, y, torch.ones(n, dtype=torch.float64), damping, zero)  # strictly convex: any start
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def val_loss(m) -> float:
        with torch.no_grad():
            return float(loss(m(xv), yv, reduction="sum"))

    base = val_loss(model)
    n_params = sum(p.numel() for p in model.parameters())
    ctx = InfluenceContext(
        model=model, loss_fn=loss, checkpoints=[], final_state=state, train=(x, y), val=(xv, yv), task="multiclass",
        n_classes=n_classes, batch_size=1024, damping=float(damping), cg_iterations=n_params + 50,
        options={"if_cg": IfCgOptions(curvature="exact", on_negative_curvature="stop", cg_tol=1e-10)},
    )
    scores = run_estimator("if_cg", ctx)["if_cg"]
    if not ctx.diagnostics["if_cg"]["converged"]:
        log.warning("convex leave-one-out: CG did not converge (%s)", ctx.diagnostics["if_cg"])
    rows = []
    for i in idx:
        w = torch.ones(n, dtype=torch.float64)
        w[i] = 0
        actual = val_loss(_fit_logistic(x, y, w, damping, state)) - base
        rows.append((i, float(scores[i]) / n, actual))
        log.info("convex leave-one-out %d: predicted %.4g, actual %.4g", i, rows[-1][1], actual)
    return pd.DataFrame(rows, columns=["index", "predicted", "actual"])
