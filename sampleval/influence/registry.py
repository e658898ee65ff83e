"""The influence-estimator registry: one entry per estimator, and nothing else needs to know it.

An entry says the estimator's name (its main column), where its function lives (imported
on use), its kind and its options:

- ``kind``: ``signed`` (an influence: positive = helpful, negative = harmful; a
  prediction of how the validation loss changes) or ``magnitude`` (non-negative, high =
  unusual or suspicious, no sign; e.g. ``self_influence``). Extra columns that are
  magnitudes are listed in ``magnitude_columns``;
- ``influence``: False for the baselines (``loss``, ``cleanlab``): oriented like a signed
  influence, but no estimate of one (refine's Dataset Contribution Score refuses them);
- ``options``: a frozen dataclass whose fields are ``influence.options.<name>.<field>``
  in params.yaml; each field carries its check and the text of what is allowed, from
  which :mod:`sampleval.config` builds its schema.

Adding an estimator: one module with ``estimate_<name>(ctx) -> {column: values}`` and one
:class:`Estimator` entry below (plus its row in the README table, which a test checks).

This module imports nothing but the standard library: config validation reads it in every
stage before any work, so it stays outside the (torch-importing) influence package.
"""
from __future__ import annotations

import dataclasses
import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable

SIGNED = "signed"
MAGNITUDE = "magnitude"

# TracIn's checkpoint choices, the one home (the tracin option, its variants in
# :mod:`sampleval.influence.tracin_variants`, fidelity.tracin_checkpoints in params):
TRACIN_CHECKPOINTS = ("all", "up_to_selected")  # every checkpoint | those up to the epoch selected on validation
TRACIN_BURN_IN = "burn_in_"  # a variant burn_in_K (K >= 1): all checkpoints but the first K
TRACIN_VARIANTS_ALLOWED = f"{', '.join(TRACIN_CHECKPOINTS)} or {TRACIN_BURN_IN}K (K >= 1 first checkpoints skipped)"


def is_tracin_variant(variant: Any) -> bool:
    """Whether ``variant`` names a TracIn checkpoint variant: one of :data:`TRACIN_CHECKPOINTS` or ``burn_in_K``."""
    if not isinstance(variant, str):
        return False
    k = variant[len(TRACIN_BURN_IN):] if variant.startswith(TRACIN_BURN_IN) else ""
    return variant in TRACIN_CHECKPOINTS or (k.isascii() and k.isdigit() and int(k) >= 1)


def option(default: Any, check: Callable[[Any], bool], allowed: str):
    """A dataclass field with its params check (``allowed`` is the text shown on a bad value)."""
    return field(default=default, metadata={"check": check, "allowed": allowed})


def _int(lo: int) -> Callable[[Any], bool]:
    return lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= lo


def _null_or(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda x: x is None or check(x)


def _positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class NoOptions:
    """The estimator takes no options (``influence.options.<name>: {}``)."""


@dataclass(frozen=True)
class TracinOptions:
    checkpoints: str = option("all", lambda x: x in TRACIN_CHECKPOINTS, f"one of {', '.join(TRACIN_CHECKPOINTS)}")
    burn_in: int = option(2, _int(0), "an integer >= 0 (the checkpoints of the first burn_in epochs are skipped)")


@dataclass(frozen=True)
class IfCgOptions:
    curvature: str = option("exact", lambda x: x in ("exact", "gauss_newton"), "one of exact, gauss_newton")
    on_negative_curvature: str = option("gauss_newton", lambda x: x in ("gauss_newton", "stop"), "one of gauss_newton, stop")
    cg_tol: float = option(1e-6, lambda x: _positive(x) and x < 1, "a number in (0, 1)")
    hvp_samples: int | None = option(None, _null_or(_int(1)), "null (all training samples) or a positive integer")


@dataclass(frozen=True)
class IfLissaOptions:
    curvature: str = option("exact", lambda x: x in ("exact", "gauss_newton"), "one of exact, gauss_newton")
    depth: int = option(1000, _int(1), "a positive integer")
    repeat: int = option(1, _int(1), "a positive integer")
    batch_size: int | None = option(None, _null_or(_int(1)), "null (influence.batch_size) or a positive integer")
    scale: float | None = option(None, _null_or(_positive), "null (auto: 1.5 x a power-iteration estimate) or a positive number")


@dataclass(frozen=True)
class IfDiagOptions:
    per_sample_batch: int = option(32, _int(1), "a positive integer")


@dataclass(frozen=True)
class LastLayerOptions:
    max_dense: int = option(12000, _int(1), "a positive integer (above it: matrix-free CG instead of a dense Cholesky)")


@dataclass(frozen=True)
class RandprojOptions:
    dim: int = option(128, _int(1), "a positive integer")


@dataclass(frozen=True)
class CleanlabOptions:
    features: str = option("auto", lambda x: x in ("auto", "pixels", "penultimate"), "one of auto, pixels, penultimate")
    folds: int = option(5, _int(2), "an integer >= 2")
    method: str = option(
        "self_confidence", lambda x: x in ("self_confidence", "normalized_margin", "confidence_weighted_entropy"),
        "one of self_confidence, normalized_margin, confidence_weighted_entropy",
    )


@dataclass(frozen=True)
class EkfacOptions:
    damping: float | None = option(
        None, _null_or(_positive), "null (Kronfluence's heuristic: 0.1 x the mean eigenvalue of each layer) or a positive number"
    )
    self_influence: bool = option(True, lambda x: isinstance(x, bool), "true or false (compute ekfac_self_influence)")
    query_batch_size: int = option(64, _int(1), "a positive integer (validation samples per Kronfluence query batch)")


@dataclass(frozen=True)
class TrakOptions:
    models: int = option(8, _int(1), "a positive integer (independently trained models in the ensemble)")
    proj_dim: int = option(512, _int(1), "a positive integer (random projection dimension)")
    regularization: float = option(
        0.0, lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0,
        "a number >= 0 (added to the diagonal of the projected-gradient kernel before inversion)",
    )


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class Estimator:
    name: str
    function: str  # "module:function", imported on use
    kind: str  # SIGNED or MAGNITUDE
    options: type = NoOptions
    magnitude_columns: tuple[str, ...] = ()  # extra columns that are magnitudes
    influence: bool = True  # False: a baseline oriented like an influence (higher = cleaner) that predicts no loss change
    shards: bool = False  # splits the training set into influence.shards executor jobs (ctx.shards, ctx.compute)
    fans_out: bool = False  # always runs executor jobs of its own (ctx.compute), so the pipeline runs it outside the pool
    needs_recipe: bool = False  # retrains with the baseline's recipe (ctx.train_config)
    alias: str | None = None  # another name of its main column (detect.rankings calls cleanlab cleanlab_logreg)

    @property
    def suspicion_sign(self) -> int:
        """+1: high = suspicious (a magnitude); -1: low = suspicious (a signed score: harmful first)."""
        return 1 if self.kind == MAGNITUDE else -1

    def load(self) -> Callable:
        module, func = self.function.split(":")
        return getattr(importlib.import_module(module), func)


_M = "sampleval.influence."
ESTIMATORS: dict[str, Estimator] = {
    e.name: e
    for e in [
        Estimator("tracin", _M + "tracin:estimate_tracin", SIGNED, TracinOptions, shards=True),
        Estimator("self_influence", _M + "tracin:estimate_self_influence", MAGNITUDE, shards=True),
        Estimator("tracincp", _M + "tracin:estimate_tracincp", SIGNED, magnitude_columns=("tracincp_self_influence",)),
        Estimator("tracin_last_layer", _M + "heuristics:estimate_tracin_last_layer", SIGNED, magnitude_columns=("tracin_last_layer_self_influence",)),
        Estimator("tracin_randproj", _M + "heuristics:estimate_tracin_randproj", SIGNED, RandprojOptions, ("tracin_randproj_self_influence",)),
        Estimator("if_last_layer", _M + "if_last_layer:estimate_if_last_layer", SIGNED, LastLayerOptions),
        Estimator("if_last_layer_miscls", _M + "if_last_layer:estimate_if_last_layer_miscls", SIGNED, LastLayerOptions),
        Estimator("if_cg", _M + "hessian:estimate_if_cg", SIGNED, IfCgOptions),
        Estimator("if_lissa", _M + "hessian:estimate_if_lissa", SIGNED, IfLissaOptions),
        Estimator("if_diag", _M + "hessian:estimate_if_diag", SIGNED, IfDiagOptions),
        Estimator("loss", _M + "heuristics:estimate_loss", SIGNED, influence=False),
        Estimator("cleanlab", _M + "heuristics:estimate_cleanlab", SIGNED, CleanlabOptions, influence=False, alias="cleanlab_logreg"),
        Estimator("ekfac", _M + "ekfac:estimate_ekfac", SIGNED, EkfacOptions, ("ekfac_self_influence",)),
        Estimator("trak", _M + "trak:estimate_trak", SIGNED, TrakOptions, fans_out=True, needs_recipe=True),
    ]
}

def get(name: str) -> Estimator:
    if name not in ESTIMATORS:
        raise ValueError(f"unknown influence estimator {name!r} (allowed: {', '.join(ESTIMATORS)})")
    return ESTIMATORS[name]


def estimator_of(name: str) -> str:
    """The registry name of ``name``, an estimator's name or its :attr:`Estimator.alias`
    (``cleanlab_logreg`` -> ``cleanlab``); other names unchanged."""
    return next((e.name for e in ESTIMATORS.values() if e.alias == name), name)


def option_specs(name: str, entry: "Estimator | None" = None) -> dict[str, tuple[Callable[[Any], bool], str]]:
    """``{field: (check, allowed)}`` of estimator ``name``'s options, for the params schema
    (``entry``: an :class:`Estimator` kept outside the registry, e.g. the detection sweep's)."""
    return {f.name: (f.metadata["check"], f.metadata["allowed"]) for f in dataclasses.fields((entry or get(name)).options)}


def options_for(name: str, given: Any = None, entry: "Estimator | None" = None, where: str = "influence.options"):
    """Estimator ``name``'s options: the defaults, overridden by ``given`` (a dict from params
    or an options instance); every value checked, a bad one named (as ``where.name.key``)."""
    cls = (entry or get(name)).options
    values = dataclasses.asdict(given) if isinstance(given, cls) else dict(given or {})
    specs = option_specs(name, entry)
    for key, value in values.items():
        if key not in specs:
            raise ValueError(f"{where}.{name}: unknown option {key!r} (allowed: {', '.join(specs) or 'none'})")
        check, allowed = specs[key]
        if not check(value):
            raise ValueError(f"{where}.{name}.{key} = {value!r} is not allowed; expected {allowed}")
    return cls(**values)


def kind_of(name: str) -> str:
    return get(name).kind


def column_kind(column: str) -> str:
    """``magnitude`` for an estimator's magnitude column (``self_influence``,
    ``tracincp_self_influence``, ...), else ``signed``."""
    for e in ESTIMATORS.values():
        if column in (e.name, e.alias):
            return e.kind
        if column in e.magnitude_columns:
            return MAGNITUDE
    return SIGNED


def suspicion(column: str, values):
    """An estimator column as a suspicion score (higher = more likely harmful or mislabelled):
    minus a signed score (harmful influence, high loss first), a magnitude as it is (high
    self-influence = unusual first). The one place that orients rankings (scores, subsets,
    refine, detection); ``values`` is a number or an array."""
    return values if column_kind(column) == MAGNITUDE else -values


def signed_influences() -> list[str]:
    """The estimators whose score is a signed influence on the validation loss (what a
    Dataset Contribution Score sums): not magnitudes, not the loss/cleanlab baselines."""
    return [n for n, e in ESTIMATORS.items() if e.kind == SIGNED and e.influence]


def signed_estimators(methods: list[str]) -> list[str]:
    """The estimators among ``methods`` whose score predicts a loss change (not magnitudes)."""
    return [m for m in methods if kind_of(m) == SIGNED]


def checkpoint_epochs(epochs: list[int], checkpoints: str = "all", burn_in: int = 0, selected_epoch: int | None = None) -> list[int]:
    """The checkpoint epochs TracIn sums over (the one rule: the tracin option and every
    variant of :mod:`sampleval.influence.tracin_variants`): all of them or those up to the epoch
    selected on validation, minus the first ``burn_in`` epochs."""
    if checkpoints not in TRACIN_CHECKPOINTS:
        raise ValueError(f"influence.options.tracin.checkpoints = {checkpoints!r}; allowed: {', '.join(TRACIN_CHECKPOINTS)}")
    chosen = [e for e in epochs if e > burn_in]
    if checkpoints == "up_to_selected":
        if selected_epoch is None:
            raise ValueError("tracin checkpoints: up_to_selected needs the selected epoch (models/model.pt 'epoch')")
        chosen = [e for e in chosen if e <= selected_epoch]
    if not chosen:
        raise ValueError(
            f"tracin: no checkpoint left (epochs {epochs}, checkpoints {checkpoints}, burn_in {burn_in}, selected epoch {selected_epoch}); "
            "lower influence.options.tracin.burn_in"
        )
    return chosen
