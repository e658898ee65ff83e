"""Influence functions restricted to the last layer (``if_last_layer``, ``if_last_layer_miscls``).

The exact Hessian of the final ``nn.Linear`` (weights and bias, the penultimate features
held fixed), dense and inverted with damping; last-layer gradients only.
``if_last_layer_miscls`` uses only the misclassified validation samples' gradient, as the
labelling-bias paper does with misclassified test samples (here: validation, never test).
Options: ``influence.options.<name>.max_dense`` (12000): above this many last-layer
parameters, CG on a matrix-free product instead of a dense Cholesky.
"""
from __future__ import annotations

import logging

import numpy as np

from sampleval.influence.core import load_final, misclassified, record
from sampleval.influence.last_layer import last_layer_quantities, solve_last_layer

log = logging.getLogger(__name__)


def _if_last_layer(ctx, only_misclassified: bool) -> np.ndarray:
    model = load_final(ctx)
    train_q = last_layer_quantities(model, ctx.loss_fn, *ctx.train, batch_size=ctx.batch_size, hessians=True)
    val_q = last_layer_quantities(model, ctx.loss_fn, *ctx.val, batch_size=ctx.batch_size)
    mask = misclassified(val_q.logits, ctx.val[1], ctx.task) if only_misclassified else None
    name = "if_last_layer_miscls" if only_misclassified else "if_last_layer"
    if mask is not None and not bool(mask.any()):
        log.warning("%s: no misclassified validation sample; every score is 0", name)
        return np.zeros(len(ctx.train[0]))
    g = val_q.summed_gradient(mask).double()
    s, info = solve_last_layer(train_q, g, float(ctx.damping), ctx.options_of(name).max_dense)
    if mask is not None:
        info["misclassified_val"] = int(mask.sum())
    info["model"] = f"final (epoch {ctx.final_epoch})" if ctx.final_epoch is not None else "final"
    record(ctx, name, info)
    return train_q.dots(s).numpy()


def estimate_if_last_layer(ctx) -> dict[str, np.ndarray]:
    """Registry entry: exact damped last-layer Hessian, summed validation gradient."""
    return {"if_last_layer": _if_last_layer(ctx, only_misclassified=False)}


def estimate_if_last_layer_miscls(ctx) -> dict[str, np.ndarray]:
    """Registry entry: as ``if_last_layer`` but with the gradient summed over the
    misclassified validation samples only."""
    return {"if_last_layer_miscls": _if_last_layer(ctx, only_misclassified=True)}
