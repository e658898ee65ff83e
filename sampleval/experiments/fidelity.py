"""Ground truth for influence estimators: retraining without samples, with error bars.

The target is fixed. Every retraining runs the baseline's recipe (same
:class:`~sampleval.training.loop.TrainConfig`, so the same cosine schedule over
``train.epochs``) and is scored at one fixed epoch, by default the epoch the baseline
selected on validation (:attr:`Retraining.epoch`). There is no reselection of the best
epoch per retraining: with reselection, "actual" jumped between epochs (issue 16: in 2
of 12 reruns the chosen epoch moved from 6 to 9), and the jump, not the left-out
sample, made the difference. Training stops at that epoch (the later epochs cannot
change it), so a retraining costs e*/epochs of a full run.

- :func:`leave_one_out`: retrain without each of a fixed random sample of training
  points, once per seed, paired by seed: for seed s,
  ``loss_increase_i,s = loss(without i, s) - loss(full, s)`` (summed validation loss),
  then averaged over seeds. The left-out sample keeps its place in every minibatch at
  weight 0, so the two runs of a pair see the same initialisation and batches. The
  spread over seeds (:func:`seed_noise`) is the training noise, estimated rather than
  hidden.
- :func:`random_subsets` + :func:`subset_val_losses`: the linear datamodeling score
  (Park et al., TRAK, 2023) over random subsets: the Spearman correlation, across
  subsets S, between the predicted group effect ``sum_{i in S} score_i`` and minus the
  summed validation loss of the model retrained on S (our scores are aggregate over
  the validation set, so the target is the summed validation loss).
- :func:`correlation_table`: Pearson and Spearman of every estimator against one
  target with percentile bootstrap 95 % CIs, resampling points (leave-one-out) or
  subsets (LDS) with one seeded set of resamples shared by all estimators, so that
  differences between estimators are paired (``*_vs_best`` CIs).
- :func:`convex_leave_one_out`: the noise-free reference: on L2-regularised multinomial
  logistic regression (strongly convex, fit to convergence) ``if_cg`` must predict exact
  leave-one-out retraining; its correlations go through the same :func:`correlation_table`.
- :func:`evaluate`: everything above for a scores table, the metrics dict of
  ``metrics/fidelity.json`` and the per-point table of ``plots/fidelity.csv``;
  ``fidelity_report.render_table``: the report's markdown table from that dict.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from sampleval.runtime.compute import SERIAL, Compute, pack_mask, run_jobs, unpack_mask
from sampleval.training.loop import TrainConfig, make_loss, target_tensor, train
from sampleval.experiments.convex import convex_leave_one_out
from sampleval.experiments.correlations import correlation_table, correlations, seed_noise
from sampleval.influence.registry import signed_estimators
from sampleval.experiments.settings import FidelityParams
from sampleval.influence.tracin_variants import epoch_columns, select_epochs, variant_scores

log = logging.getLogger(__name__)


def sample_points(n: int, k: int, seed: int) -> np.ndarray:
    """``k`` distinct training indices drawn with ``seed``, sorted (a fixed random sample)."""
    if not 0 < k <= n:
        raise ValueError(f"cannot draw {k} points from {n} training samples")
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


class _Reached(Exception):
    """Raised from the per-epoch hook once the scored epoch is done: carries its loss."""

    def __init__(self, loss: float):
        super().__init__(loss)
        self.loss = loss


@dataclass(frozen=True)
class Retraining:
    """The fixed part of every ground-truth retraining: the data, the recipe, the scored
    epoch and the yardstick. Retrainings differ only by which training samples they see
    and the seed.

    ``epoch``: the epoch whose model is scored (the baseline's selected epoch); ``None``
    = the last epoch, ``cfg.epochs``. Never reselected per retraining.
    ``trainer`` has :func:`~sampleval.training.loop.train`'s signature (tests pass fakes); it is
    called with ``val_metrics=hook``, which it must call once per epoch with that epoch's
    validation logits (the hook stops training at ``epoch``).
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
    epoch: int | None = None
    trainer: Callable = train
    loss_fn: Callable | None = None
    runs: list = field(default_factory=list, compare=False, repr=False)  # (n_kept, seed) of every retraining, for accounting
    compute: Compute = field(default=SERIAL, compare=False, repr=False)  # where the retrainings run (sampleval.runtime.compute)

    def __post_init__(self):
        if self.epoch is not None and not 1 <= int(self.epoch) <= self.cfg.epochs:
            raise ValueError(f"fidelity epoch {self.epoch} is outside 1..train.epochs = {self.cfg.epochs}")

    @property
    def n_train(self) -> int:
        return len(self.x_train)

    @property
    def scored_epoch(self) -> int:
        return int(self.epoch) if self.epoch is not None else int(self.cfg.epochs)

    def _measure(self) -> Callable:
        return self.loss_fn if self.loss_fn is not None else make_loss(self.task, self.cfg, self.y_train)

    def val_loss_at_epoch(self, mask: np.ndarray, seed: int, keep_order: bool = False) -> float:
        """Summed validation loss of the model trained on ``mask`` with ``seed``, at
        :attr:`scored_epoch`. With ``keep_order`` the excluded samples keep their places in
        every minibatch at weight 0 (same batches as the full run of that seed)."""
        measure, yv, target = self._measure(), target_tensor(self.y_val, self.task), self.scored_epoch
        seen = [0]

        def hook(val_logits) -> dict:
            seen[0] += 1
            if seen[0] == target:
                raise _Reached(float(measure(torch.as_tensor(np.asarray(val_logits)).double(), yv, reduction="sum")))
            return {}

        mask = np.asarray(mask, bool)
        try:
            if keep_order:
                self.trainer(self.x_train, self.y_train, self.x_val, self.y_val, self.task, self.n_outputs, self.cfg,
                             seed=int(seed), sample_weight=mask.astype(np.float32), val_metrics=hook)
            else:
                self.trainer(self.x_train[mask], self.y_train[mask], self.x_val, self.y_val, self.task, self.n_outputs, self.cfg,
                             seed=int(seed), val_metrics=hook)
        except _Reached as reached:
            return reached.loss
        raise RuntimeError(f"the trainer ended before epoch {target} without reporting it (it must call val_metrics once per epoch)")

    def val_losses(self, mask: np.ndarray, seeds: Sequence[int], keep_order: bool = False) -> np.ndarray:
        """:meth:`val_loss_at_epoch` for each seed, in order."""
        return self.val_losses_many(np.asarray(mask, bool)[None], seeds, keep_order)[0]

    def val_losses_many(self, masks: np.ndarray, seeds: Sequence[int], keep_order: bool = False) -> np.ndarray:
        """(n_masks, n_seeds) :meth:`val_loss_at_epoch` of every mask and seed, each one a
        job of :attr:`compute` (results in order, whatever the number of workers)."""
        masks = np.asarray(masks, bool)
        jobs = [{"mask": pack_mask(m), "seed": int(s), "keep_order": bool(keep_order)} for m in masks for s in seeds]
        self.runs.extend((int(m.sum()), int(s)) for m in masks for s in seeds)
        labels = [f"retraining {i // len(seeds)} ({int(m.sum())} samples) seed {s}" for i, (m, s) in enumerate((m, s) for m in masks for s in seeds)]
        shared = replace(self, runs=[], compute=SERIAL)
        losses = run_jobs(_retraining_job, jobs, self.compute, shared=shared, labels=labels, desc="fidelity retrainings")
        return np.asarray(losses, dtype=float).reshape(len(masks), len(seeds))


def _retraining_job(setup: Retraining, job: dict) -> float:
    """Executor job: one retraining's summed validation loss at the scored epoch."""
    return setup.val_loss_at_epoch(unpack_mask(job["mask"], setup.n_train), job["seed"], job["keep_order"])


def _seeds(seed: int | Sequence[int]) -> list[int]:
    seeds = [int(seed)] if np.isscalar(seed) else [int(s) for s in seed]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"retraining seeds must be a non-empty list of distinct integers, got {seed}")
    return seeds


def leave_one_out(setup: Retraining, indices: Sequence[int], seed: int | Sequence[int] = 0) -> pd.DataFrame:
    """Retrain without each training index in ``indices``, once per seed, paired by seed.

    Returns one row per (index, seed): ``index``, ``seed``, ``val_loss_full`` (all samples,
    that seed), ``val_loss_without`` and ``loss_increase = val_loss_without - val_loss_full``
    (summed validation losses at the scored epoch, ``setup``'s yardstick). Positive = the
    sample helped (the sign of our influence scores). :func:`average_over_seeds` gives one
    row per index.

    The left-out sample keeps its place in every minibatch with weight 0, so the paired
    runs see the same batches in the same order and differ only by that sample's
    gradient. (Dropping it from the array would reshuffle every later batch, and that
    training noise is as large as the effect being measured.)"""
    seeds = _seeds(seed)
    n = setup.n_train
    for i in indices:
        if not 0 <= int(i) < n:
            raise ValueError(f"leave-one-out index {i} is outside 0..{n - 1}")
    masks = np.ones((len(indices) + 1, n), bool)
    for row, i in enumerate(indices, start=1):
        masks[row, int(i)] = False
    losses = setup.val_losses_many(masks, seeds, keep_order=True)  # row 0: the full training set
    full = losses[0]
    rows = []
    for i, without in zip(indices, losses[1:]):
        for s, f, w in zip(seeds, full, without):
            rows.append((int(i), s, float(f), float(w), float(w - f)))
        log.info("leave-one-out %d: loss increase %s over seeds %s", int(i), np.round(without - full, 5).tolist(), seeds)
    return pd.DataFrame(rows, columns=["index", "seed", "val_loss_full", "val_loss_without", "loss_increase"])


def average_over_seeds(loo: pd.DataFrame) -> pd.DataFrame:
    """One row per index (in first-seen order): mean ``loss_increase`` over seeds, its
    standard deviation over seeds (``sd``, NaN for one seed) and ``n_seeds``."""
    g = loo.groupby("index", sort=False)["loss_increase"]
    return pd.DataFrame({"loss_increase": g.mean(), "sd": g.std(ddof=1), "n_seeds": g.size()}).reset_index()


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


def subset_val_losses(
    setup: Retraining, masks: np.ndarray, seed: int | Sequence[int] = 0, per_seed: bool = False, keep_order: bool = True
) -> np.ndarray:
    """Summed validation loss at the scored epoch of the model retrained on each subset
    (one per mask row), ``setup``'s yardstick; averaged over the seeds, or
    (n_subsets, n_seeds) with ``per_seed``.

    ``keep_order`` (default): the left-out samples keep their batch places at weight 0, so
    every subset of one seed starts from the same initialisation and sees the same batch
    order; the differences between subsets are then less training noise (measured on the
    default digits run, 16 subsets x 2 seeds: seed-to-seed agreement across subsets 0.09
    against -0.22 when the left-out samples are dropped and the batches reshuffled)."""
    seeds = _seeds(seed)
    losses = setup.val_losses_many(np.asarray(masks, bool), seeds, keep_order)
    return losses if per_seed else losses.mean(1)


def linear_datamodeling_score(scores: np.ndarray, masks: np.ndarray, val_losses: np.ndarray) -> float:
    """Spearman correlation between ``masks @ scores`` (predicted benefit of each subset)
    and ``-val_losses`` (actual benefit). 1 = the scores rank subsets perfectly."""
    masks, val_losses = _check_masks(scores, masks, val_losses)
    return correlations(masks.astype(float) @ np.asarray(scores, float), -val_losses)["spearman"]


def _check_masks(scores, masks, val_losses) -> tuple[np.ndarray, np.ndarray]:
    masks = np.asarray(masks, bool)
    val_losses = np.asarray(val_losses, float)
    if masks.shape != (len(val_losses), len(scores)):
        raise ValueError(f"masks {masks.shape} must be (n_subsets={len(val_losses)}, n_train={len(scores)})")
    return masks, val_losses


# --------------------------------------------------------------------------- the whole stage

def predictors(scores: pd.DataFrame, methods: Sequence[str], variants: Sequence[str] = (), selected_epoch: int | None = None) -> tuple[dict, dict]:
    """``(estimators, tracin_variants)``: the signed score columns of ``methods`` (not
    self-influence, a magnitude), and for ``tracin`` each checkpoint variant summed from the
    ``tracin_epoch_NNN`` columns (:mod:`sampleval.influence.tracin_variants`)."""
    est = {m: scores[m].to_numpy(float) for m in signed_estimators(methods)}
    var = {}
    epochs = sorted(epoch_columns(scores.columns))
    if "tracin" in methods and variants and epochs:
        for v in variants:
            try:
                select_epochs(epochs, v, selected_epoch)
            except ValueError as exc:  # e.g. burn_in_2 with 2 epochs: a comparison row that cannot exist
                log.warning("TracIn variant %s left out of the fidelity comparison: %s", v, exc)
                continue
            var[v] = variant_scores(scores, v, selected_epoch)
    return est, var


def evaluate(
    setup: Retraining,
    scores: pd.DataFrame,
    methods: Sequence[str],
    fcfg: FidelityParams,
    seed: int,
    selected_epoch: int | None = None,
    sample_ids: Sequence[str] | None = None,
    convex_damping: float | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Leave-one-out and LDS retraining of ``setup`` against every estimator in ``scores``
    (rows in training order), with bootstrap CIs; the convex control when
    ``convex_damping`` is given (multi-class only). ``seed`` draws the points, the
    subsets and the bootstrap resamples. Returns the metrics dict (``metrics/fidelity.json``)
    and a per-point table ``(model, estimator, sample_id, predicted, actual, actual_sd)``."""
    n = setup.n_train
    if len(scores) != n:
        raise ValueError(f"the scores table has {len(scores)} rows but the training set {n}; rerun `dvc repro scores`")
    ids = np.asarray(sample_ids if sample_ids is not None else np.arange(n).astype(str))
    est, var = predictors(scores, methods, fcfg.tracin_checkpoints, selected_epoch)
    everything = {**est, **{f"tracin@{v}": s for v, s in var.items()}}

    idx = sample_points(n, fcfg.n_points, seed)
    per_seed, actual, actual_sd = _loo_actual(setup, idx, fcfg.seeds)

    masks = random_subsets(n, fcfg.n_subsets, fcfg.subset_fraction, seed)
    sub = subset_val_losses(setup, masks, list(fcfg.subset_seeds), per_seed=True)
    sub_mean = sub.mean(1)

    loo_c = correlation_table({m: s[idx] for m, s in everything.items()}, actual, fcfg.n_bootstrap, seed, prefix="loo_")
    lds_c = correlation_table({m: masks.astype(float) @ s for m, s in everything.items()}, -sub_mean, fcfg.n_bootstrap, seed + 1, prefix="lds_")

    out: dict = {
        "epoch": setup.scored_epoch,
        "seeds": [int(s) for s in fcfg.seeds],
        "subset_seeds": [int(s) for s in fcfg.subset_seeds],
        "n_points": int(len(idx)),
        "n_subsets": int(fcfg.n_subsets),
        "subset_fraction": float(fcfg.subset_fraction),
        "n_bootstrap": int(fcfg.n_bootstrap),
        "ci_level": 0.95,
        "n_retrainings": len(setup.runs),
        "noise": {"loo": seed_noise(per_seed), "lds": seed_noise(sub)},
        "network": {m: _entry(loo_c[m], lds_c[m]) for m in est},
    }
    if var:
        out["tracin_checkpoints"] = {v: _entry(loo_c[f"tracin@{v}"], lds_c[f"tracin@{v}"]) for v in var}
        out["tracin_checkpoints"]["selected_epoch"] = selected_epoch
    rows = [pd.DataFrame({"model": "network", "estimator": m, "sample_id": ids[idx], "predicted": s[idx], "actual": actual, "actual_sd": actual_sd})
            for m, s in est.items()]
    if convex_damping is not None and setup.task == "multiclass":
        out["convex_if"], convex_rows = _convex_control(setup, idx, ids, fcfg.n_bootstrap, seed, convex_damping)
        rows.append(convex_rows)
    return out, pd.concat(rows, ignore_index=True)


def _loo_actual(setup: Retraining, idx: np.ndarray, seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leave-one-out retraining of the points ``idx`` with each seed: the loss increases
    ``(point, seed)``, their mean over seeds and sd (NaN with a single seed)."""
    loo = leave_one_out(setup, idx, seed=list(seeds))
    per_seed = loo.pivot(index="index", columns="seed", values="loss_increase").loc[idx, list(seeds)].to_numpy()
    actual = per_seed.mean(1)
    actual_sd = per_seed.std(1, ddof=1) if per_seed.shape[1] > 1 else np.full(len(idx), np.nan)
    return per_seed, actual, actual_sd


def _entry(loo: dict, lds: dict) -> dict:
    """One estimator's fidelity entry: its leave-one-out correlations and its LDS (``lds_spearman*`` renamed ``lds*``)."""
    e = dict(loo)
    e.update({k.replace("lds_spearman", "lds"): v for k, v in lds.items() if k.startswith("lds_spearman")})
    return e


def _convex_control(setup: Retraining, idx: np.ndarray, ids: np.ndarray, n_bootstrap: int, seed: int, damping: float) -> tuple[dict, pd.DataFrame]:
    """Exact influence against exact leave-one-out for the convex model (multinomial logistic
    regression on the same inputs): its correlations with CIs and its per-point rows."""
    convex = convex_leave_one_out(setup.x_train, setup.y_train, setup.x_val, setup.y_val, setup.n_outputs, idx, damping=damping)
    c = correlation_table({"if_exact": convex["predicted"].to_numpy()}, convex["actual"].to_numpy(), n_bootstrap, seed, prefix="loo_")
    rows = pd.DataFrame({"model": "logistic regression", "estimator": "if_exact", "sample_id": ids[convex["index"].to_numpy()],
                         "predicted": convex["predicted"].to_numpy(), "actual": convex["actual"].to_numpy(), "actual_sd": 0.0})
    return c["if_exact"], rows
