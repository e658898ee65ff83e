"""Ground truth for influence estimators: retraining without samples.

- :func:`leave_one_out`: retrain without each of a fixed random sample of training
  points (same seeds, same recipe) and measure the actual change in the summed
  validation loss. ``loss_increase = val_loss_without - val_loss_full`` has the sign of
  our influence scores: removing a helpful sample (positive score) raises the loss.
- :func:`random_subsets` + :func:`subset_val_losses` + :func:`linear_datamodeling_score`:
  the linear datamodeling score (Park et al., TRAK, 2023) over random 50 % subsets: the
  Spearman correlation, across subsets S, between the predicted group effect
  ``sum_{i in S} score_i`` and minus the summed validation loss of the model retrained
  on S. Our scores are aggregate over the validation set, so the target is the summed
  validation loss rather than TRAK's per-test-sample losses.
- :func:`correlations`: Pearson and Spearman (scipy) with their p-values.
- :func:`convex_leave_one_out`: the noise-free reference: on L2-regularised multinomial
  logistic regression (strongly convex, fit to convergence) ``if_cg`` must predict exact
  leave-one-out retraining; a check of the influence machinery itself.

Every retraining uses :func:`sampleval.training.train` with the given
:class:`~sampleval.training.TrainConfig`, scores the model selected on validation (as
the pipeline does) and sums the training loss over the validation set. Note that with
minibatch SGD, removing one sample reshuffles every later batch, so leave-one-out
differences of a network carry training noise of the same order as the effect;
averaging over several ``seeds`` reduces it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .influence import InfluenceContext, run_estimator
from .losses import TrainingLoss
from .training import TrainConfig, make_loss, predict_logits, target_tensor, to_float, train

log = logging.getLogger(__name__)


def sample_points(n: int, k: int, seed: int) -> np.ndarray:
    """``k`` distinct training indices drawn with ``seed``, sorted (a fixed random sample)."""
    if not 0 < k <= n:
        raise ValueError(f"cannot draw {k} points from {n} training samples")
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def summed_val_loss(result, x_val: np.ndarray, y_val: np.ndarray, task: str, loss_fn: Callable | None = None) -> float:
    """Summed loss (``loss_fn``, default the run's own training loss) of a
    :class:`~sampleval.training.TrainResult`'s selected model on validation."""
    loss_fn = loss_fn or result.loss_fn
    logits = torch.from_numpy(predict_logits(result.model, x_val)).double()
    return float(loss_fn(logits, target_tensor(y_val, task), reduction="sum"))


@dataclass(frozen=True)
class Retraining:
    """The fixed part of every ground-truth retraining: the data, the recipe and the
    yardstick. Retrainings differ only by which training samples they see and the seed.

    ``trainer`` has :func:`~sampleval.training.train`'s signature (tests pass fakes);
    ``loss_fn`` measures the summed validation loss, by default the training loss built on
    the full training set: one fixed yardstick for every retraining (a multi-label
    ``pos_weight`` would otherwise shift with each subset)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    task: str
    n_outputs: int
    cfg: TrainConfig
    trainer: Callable = train
    loss_fn: Callable | None = None

    @property
    def n_train(self) -> int:
        return len(self.x_train)

    def val_loss(self, mask: np.ndarray, seeds: Sequence[int], keep_order: bool = False) -> float:
        """Mean over ``seeds`` of the summed validation loss after training on ``mask``. With
        ``keep_order`` the excluded samples keep their places in every minibatch at weight 0."""
        measure = self.loss_fn if self.loss_fn is not None else make_loss(self.task, self.cfg, self.y_train)
        losses = []
        for s in seeds:
            if keep_order:
                res = self.trainer(self.x_train, self.y_train, self.x_val, self.y_val, self.task, self.n_outputs, self.cfg,
                                   seed=int(s), sample_weight=mask.astype(np.float32))
            else:
                res = self.trainer(self.x_train[mask], self.y_train[mask], self.x_val, self.y_val, self.task, self.n_outputs, self.cfg, seed=int(s))
            losses.append(summed_val_loss(res, self.x_val, self.y_val, self.task, measure))
        return float(np.mean(losses))


def _seeds(seed: int | Sequence[int]) -> list[int]:
    return [int(seed)] if np.isscalar(seed) else [int(s) for s in seed]


def leave_one_out(setup: Retraining, indices: Sequence[int], seed: int | Sequence[int] = 0) -> pd.DataFrame:
    """Retrain without each training index in ``indices``.

    Returns one row per index: ``index``, ``val_loss_full`` (all samples), ``val_loss_without``
    and ``loss_increase = val_loss_without - val_loss_full`` (summed validation losses,
    averaged over the seeds when ``seed`` is a list, measured with ``setup``'s yardstick).

    The left-out sample keeps its place in every minibatch with weight 0, so the retraining
    sees the same batches in the same order and differs only by that sample's gradient.
    (Dropping it from the array would reshuffle every later batch, and that training noise
    is as large as the effect being measured.) ``setup.trainer`` must accept ``sample_weight``."""
    seeds = _seeds(seed)
    n = setup.n_train
    for i in indices:
        if not 0 <= int(i) < n:
            raise ValueError(f"leave-one-out index {i} is outside 0..{n - 1}")
    full = setup.val_loss(np.ones(n, bool), seeds, keep_order=True)
    rows = []
    for i in indices:
        mask = np.ones(n, bool)
        mask[int(i)] = False
        without = setup.val_loss(mask, seeds, keep_order=True)
        rows.append((int(i), full, without, without - full))
        log.info("leave-one-out %d: validation loss %.6g -> %.6g", int(i), full, without)
    return pd.DataFrame(rows, columns=["index", "val_loss_full", "val_loss_without", "loss_increase"])


def random_subsets(n: int, n_subsets: int, fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """Boolean masks (n_subsets, n), each keeping exactly ``round(fraction * n)`` samples."""
    if not 0 < fraction < 1:
        raise ValueError(f"subset fraction must be in (0, 1), got {fraction}")
    size = int(round(fraction * n))
    if size < 1:
        raise ValueError(f"a {fraction:.0%} subset of {n} samples is empty")
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_subsets, n), bool)
    for m in range(n_subsets):
        masks[m, rng.choice(n, size=size, replace=False)] = True
    return masks


def subset_val_losses(setup: Retraining, masks: np.ndarray, seed: int | Sequence[int] = 0) -> np.ndarray:
    """Summed validation loss of the model retrained on each subset (one per mask row),
    measured with ``setup``'s yardstick and averaged over the seeds."""
    seeds = _seeds(seed)
    return np.array([setup.val_loss(m, seeds) for m in np.asarray(masks, bool)])


def linear_datamodeling_score(scores: np.ndarray, masks: np.ndarray, val_losses: np.ndarray) -> float:
    """Spearman correlation between ``masks @ scores`` (predicted benefit of each subset)
    and ``-val_losses`` (actual benefit). 1 = the scores rank subsets perfectly."""
    masks = np.asarray(masks, bool)
    scores = np.asarray(scores, float)
    val_losses = np.asarray(val_losses, float)
    if masks.shape != (len(val_losses), len(scores)):
        raise ValueError(f"masks {masks.shape} must be (n_subsets={len(val_losses)}, n_train={len(scores)})")
    return correlations(masks.astype(float) @ scores, -val_losses)["spearman"]


def correlations(predicted, actual) -> dict:
    """Pearson and Spearman correlations (and two-sided p-values) between two 1-D arrays;
    NaN where undefined (fewer than 3 pairs or a constant input)."""
    from scipy import stats

    p = np.asarray(predicted, float)
    a = np.asarray(actual, float)
    if p.shape != a.shape or p.ndim != 1:
        raise ValueError(f"predicted {p.shape} and actual {a.shape} must be 1-D arrays of the same length")
    out = {"n": int(len(p)), "pearson": np.nan, "pearson_p": np.nan, "spearman": np.nan, "spearman_p": np.nan}
    if len(p) < 3 or np.ptp(p) == 0 or np.ptp(a) == 0:
        return out
    r = stats.pearsonr(p, a)
    s = stats.spearmanr(p, a)
    out.update(pearson=float(r.statistic), pearson_p=float(r.pvalue), spearman=float(s.statistic), spearman_p=float(s.pvalue))
    return out


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
    Inputs are uint8 images ``(N, C, H, W)`` scaled by :func:`~sampleval.training.to_float`."""
    if not damping > 0:
        raise ValueError(f"damping must be positive (it is the L2 term that makes the objective strongly convex), got {damping}")
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
    loss = TrainingLoss("multiclass", 0.0, 0.0)
    zero = {"1.weight": torch.zeros(n_classes, x[0].numel(), dtype=torch.float64), "1.bias": torch.zeros(n_classes, dtype=torch.float64)}
    model = _fit_logistic(x, y, torch.ones(n, dtype=torch.float64), damping, zero)  # strictly convex: any start
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def val_loss(m) -> float:
        with torch.no_grad():
            return float(loss(m(xv), yv, reduction="sum"))

    base = val_loss(model)
    n_params = sum(p.numel() for p in model.parameters())
    diagnostics: dict = {}
    ctx = InfluenceContext(
        model=model, loss_fn=loss, checkpoints=[], final_state=state, train=(x, y), val=(xv, yv), task="multiclass",
        n_classes=n_classes, batch_size=1024, damping=float(damping), cg_iterations=n_params + 50,
        extra={"cg_tol": 1e-10, "hessian": "exact", "on_negative_curvature": "stop", "diagnostics": diagnostics},
    )
    scores = run_estimator("if_cg", ctx)["if_cg"]
    if not diagnostics["if_cg"]["converged"]:
        log.warning("convex leave-one-out: CG did not converge (%s)", diagnostics["if_cg"])
    rows = []
    for i in idx:
        w = torch.ones(n, dtype=torch.float64)
        w[i] = 0
        actual = val_loss(_fit_logistic(x, y, w, damping, state)) - base
        rows.append((i, float(scores[i]) / n, actual))
        log.info("convex leave-one-out %d: predicted %.4g, actual %.4g", i, rows[-1][1], actual)
    return pd.DataFrame(rows, columns=["index", "predicted", "actual"])
