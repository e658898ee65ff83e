"""EK-FAC influence functions from Kronfluence (``ekfac``, with ``ekfac_self_influence``).

Kronfluence (Grosse et al. 2023, "Studying large language model generalization with
influence functions") approximates the Gauss-Newton Hessian of every ``nn.Linear`` and
``nn.Conv2d`` layer by eigenvalue-corrected Kronecker factors (EK-FAC); other parameters
(BatchNorm, embeddings, biases of unsupported layers) are not covered. The model's training
loss is ours (:class:`~sampleval.training.losses.TrainingLoss`: focal loss with label smoothing, the
loss the model was trained with), summed over the batch as Kronfluence expects; the
covariance factors use labels sampled from the model's predictions (the true Fisher,
Kronfluence's default).

``ekfac``: the influence of each training sample on the summed validation loss under the
final model, ``g_val^T (G + λI)^-1 g_i`` summed over the validation samples (Kronfluence's
pairwise scores with the query gradients aggregated: one summed validation gradient). Positive = helpful: up-weighting
``z_i`` lowers the validation loss (the package's sign convention; Kronfluence's too).
``ekfac_self_influence``: ``g_i^T (G + λI)^-1 g_i`` (a magnitude, high = unusual).

Options (``influence.options.ekfac``): ``damping`` (null: Kronfluence's heuristic, 0.1 x
the mean eigenvalue of each layer's EK-FAC curvature, which scales with the model; a
number: that λ for every layer), ``self_influence`` (compute the self-influence column),
``query_batch_size``. Kronfluence writes its factors and scores under an output folder:
here a temporary folder, removed afterwards. Nothing is downloaded.
"""
from __future__ import annotations

import copy
import logging
import tempfile
import warnings

import numpy as np
import torch
from torch import nn

from sampleval.influence.core import load_final, record

log = logging.getLogger(__name__)


class _Data(torch.utils.data.Dataset):
    """Model-ready ``(x, y)`` pairs, as Kronfluence's data loaders want them."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


def _task(loss_fn, task: str):
    from kronfluence.task import Task

    class SampleTask(Task):
        """Our training loss (summed) for the factors and the training gradients; the
        summed validation loss as the measurement."""

        def compute_train_loss(self, batch, model: nn.Module, sample: bool = False) -> torch.Tensor:
            x, y = batch
            logits = model(x)
            if sample:  # true Fisher: labels drawn from the model's own predictions
                with torch.no_grad():
                    if task == "multilabel":
                        y = torch.bernoulli(torch.sigmoid(logits.detach()))
                    else:
                        y = torch.multinomial(torch.softmax(logits.detach(), -1), 1).squeeze(1)
            return loss_fn(logits, y, reduction="sum")

        def compute_measurement(self, batch, model: nn.Module) -> torch.Tensor:
            x, y = batch
            return loss_fn(model(x), y, reduction="sum")

    return SampleTask()


def ekfac_scores(
    model: nn.Module, loss_fn, task: str, train, val, damping: float | None = None, batch_size: int = 256,
    query_batch_size: int = 64, self_influence: bool = True, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """``(influence on the summed validation loss, self-influence or None, diagnostics)``
    for every training sample; ``train`` and ``val`` are model-ready ``(x, y)`` tensors."""
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments

    ktask = _task(loss_fn, task)
    n_params = sum(p.numel() for p in model.parameters())
    supported = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    covered = sorted({type(m).__name__ for m in supported})
    n_covered = sum(p.numel() for m in supported for p in m.parameters(recurse=False))
    model = prepare_model(copy.deepcopy(model).eval(), ktask)  # wraps Linear/Conv2d in place: a copy
    train_ds, val_ds = _Data(*train), _Data(*val)
    with tempfile.TemporaryDirectory(prefix="sampleval-ekfac-") as out, warnings.catch_warnings(), torch.random.fork_rng():
        torch.manual_seed(seed)  # the labels sampled for the true Fisher; the caller's RNG state is restored afterwards
        warnings.filterwarnings("ignore", message=".*GradScaler.*", category=FutureWarning)
        analyzer = Analyzer(analysis_name="sampleval", model=model, task=ktask, cpu=True, disable_tqdm=True, disable_model_save=True, output_dir=out)
        analyzer.fit_all_factors(
            factors_name="ekfac", dataset=train_ds, per_device_batch_size=batch_size,
            factor_args=FactorArguments(strategy="ekfac"), overwrite_output_dir=True,
        )
        # the summed validation gradient (aggregate_query_gradients): one query, not one per sample
        pair_args = ScoreArguments(damping_factor=damping, aggregate_query_gradients=True)
        score_args = ScoreArguments(damping_factor=damping)
        analyzer.compute_pairwise_scores(
            scores_name="pairwise", factors_name="ekfac", query_dataset=val_ds, train_dataset=train_ds,
            per_device_query_batch_size=query_batch_size, per_device_train_batch_size=batch_size, score_args=pair_args,
            overwrite_output_dir=True,
        )
        pairwise = analyzer.load_pairwise_scores("pairwise")["all_modules"]  # (1, n_train): summed over validation
        influence = pairwise.double().sum(0).numpy()
        self_scores = None
        if self_influence:
            analyzer.compute_self_scores(
                scores_name="self", factors_name="ekfac", train_dataset=train_ds, per_device_train_batch_size=batch_size,
                score_args=score_args, overwrite_output_dir=True,
            )
            self_scores = analyzer.load_self_scores("self")["all_modules"].double().numpy()
    info = {
        "library": "kronfluence", "strategy": "ekfac", "damping": "heuristic (0.1 x mean eigenvalue per layer)" if damping is None else float(damping),
        "layers": ", ".join(covered), "covered_params": int(n_covered), "model_params": int(n_params),
        "fisher": "true (sampled labels)",
    }  # no wall times: the diagnostics reach metrics/influence.json, which must be byte-reproducible
    return influence, self_scores, info


def estimate_ekfac(ctx) -> dict[str, np.ndarray]:
    """Registry entry: Kronfluence EK-FAC influence on the summed validation loss, final model."""
    opts = ctx.options_of("ekfac")
    model = load_final(ctx)
    influence, self_scores, info = ekfac_scores(
        model, ctx.loss_fn, ctx.task, tuple(ctx.train), tuple(ctx.val), opts.damping, ctx.batch_size, opts.query_batch_size,
        opts.self_influence, ctx.seed,
    )
    info["model"] = f"final (epoch {ctx.final_epoch})" if ctx.final_epoch is not None else "final"
    record(ctx, "ekfac", info)
    out = {"ekfac": influence}
    if self_scores is not None:
        out["ekfac_self_influence"] = self_scores
    return out
