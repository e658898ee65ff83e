"""params.yaml schema and validation.

Every stage calls :func:`load_params` first: an unknown key or a bad value fails
with one line naming the key and what is allowed, before any work is done.

The schema is assembled from the section dataclasses of the packages that consume them
(:class:`Params`; each field carries its type, check and help, :mod:`sampleval.schema`);
this module adds the YAML reader and the rules that span sections (:func:`check_consistency`).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sampleval.data import sources
from sampleval.data.settings import DataParams, NoiseParams
from sampleval.detection.settings import DetectParams, ShapesParams, check_detect
from sampleval.experiments.settings import CorrectionsParams, FidelityParams, RefineParams, StatsParams, SubsetsParams
from sampleval.influence import registry
from sampleval.influence.registry import ESTIMATORS  # noqa: F401  (the live registry; tests import it from here)
from sampleval.influence.settings import InfluenceParams
from sampleval.reporting.settings import RECOMMENDED, SuspectsParams
from sampleval.runtime.settings import ComputeParams
from sampleval.schema import Defaulted, ParamsError, from_params, integer, schema_of, section, setting
from sampleval.training.settings import IMAGE_MODELS, LARGE_IMAGE_MODELS, TABLE_MODELS, ChecksParams, ModelParams, TrainParams

__all__ = ["ParamsError", "Params", "SCHEMA", "check_consistency", "load", "load_params", "read_yaml", "resolve_noise", "typed", "validate"]


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but numbers in scientific notation are numbers.

    PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent: ``1e-3``,
    ``3e-4`` and ``1E5`` load as *strings* (``1.0e-3`` is a float). DVC reads the same
    params.yaml with ruamel (YAML 1.2), where all of them are floats, for ``${...}``
    interpolation and params tracking. This loader adds the YAML 1.2 forms so that both
    read the same numbers."""


_FLOAT = "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _FLOAT]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
        |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_yaml(text: str) -> Any:
    """Parse params YAML with :class:`_Loader` (scientific notation is a number)."""
    return yaml.load(text, Loader=_Loader)


@dataclass(frozen=True)
class Params:
    """The whole params.yaml: the run's seed and one section per consuming package."""

    seed: int = setting(integer(0), "the run's seed: splits, noise draw, training")
    data: DataParams = section(DataParams, "the data set and its splits (sampleval/data)")
    noise: NoiseParams = section(NoiseParams, "label noise injected into the training split")
    model: ModelParams = section(ModelParams, "the architecture")
    train: TrainParams = section(TrainParams, "the training recipe")
    influence: InfluenceParams = section(InfluenceParams, "the influence estimators and their settings")
    subsets: SubsetsParams = section(SubsetsParams, "retraining on subsets")
    stats: StatsParams = section(StatsParams, "statistics of the subset experiment")
    fidelity: FidelityParams = section(FidelityParams, "estimators against actual retraining")
    checks: ChecksParams = section(ChecksParams, "guards against a bad run passing as a good one")
    compute: ComputeParams = section(ComputeParams, "where independent jobs run")
    refine: RefineParams = section(RefineParams, "influence-guided removal against random removal")
    shapes: ShapesParams = section(ShapesParams, "score shapes over detect's sweep cells")
    suspects: SuspectsParams = section(SuspectsParams, "the flagged samples to review")
    corrections: CorrectionsParams = section(CorrectionsParams, "a reviewer's corrections against a random control")
    detect: DetectParams = section(DetectParams, "the label-error detection sweep")


SCHEMA: dict[str, Any] = schema_of(Params)


def validate(params: dict, schema: dict = SCHEMA, prefix: str = "") -> dict:
    """Check ``params`` against ``schema``; raise :class:`ParamsError` on the first problem."""
    if not isinstance(params, dict):
        raise ParamsError(f"params: '{prefix or 'top level'}' must be a mapping")
    for key in params:
        if key not in schema:
            allowed = ", ".join(sorted(schema))
            raise ParamsError(f"params: unknown key '{prefix}{key}' (allowed here: {allowed})")
    for key, spec in schema.items():
        name = f"{prefix}{key}"
        if callable(spec):  # a nested schema read now (the estimator registry's options)
            spec = spec()
        if key not in params and not isinstance(spec, Defaulted):
            raise ParamsError(f"params: missing key '{name}'")
        if isinstance(spec, Defaulted):  # may be left out: the default (an estimator option's, from its dataclass)
            params.setdefault(key, spec.default())
            spec = spec.schema
        value = params[key]
        if isinstance(spec, dict):
            validate(value, spec, prefix=f"{name}.")
        elif not spec.check(value):
            hint = ""
            if isinstance(value, str) and _looks_numeric(value):
                hint = " (it was read as text: write the number without quotes)"
            raise ParamsError(f"params: '{name}' = {value!r} is not allowed; expected {spec.allowed}{hint}")
        elif spec.coerce is not None:
            params[key] = spec.coerce(value)
    return params


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_consistency(p: Params) -> None:
    """Cross-section rules that a per-key schema cannot express (on the typed params)."""
    if p.data.val_fraction + p.data.test_fraction >= 0.9:
        raise ParamsError("params: 'data.val_fraction' + 'data.test_fraction' must be below 0.9 to leave a training set")
    missing = [s for s in p.subsets.scores if s not in p.influence.methods]
    if missing:
        raise ParamsError(
            f"params: 'subsets.scores' lists {', '.join(missing)}, not in 'influence.methods' "
            f"({', '.join(p.influence.methods)}); add it there or remove it here"
        )
    n_seeds, alpha = len(p.subsets.seeds), p.stats.alpha
    if 2 / 2**n_seeds > alpha:  # the exact two-sided paired test over n seeds cannot go below 2 / 2^n
        need = next(n for n in range(1, 64) if 2 / 2**n <= alpha)
        raise ParamsError(
            f"params: {n_seeds} 'subsets.seeds' cannot reach 'stats.alpha' = {alpha}: the exact paired test's smallest "
            f"p is 2/2^{n_seeds} = {2 / 2**n_seeds:.4g}; use at least {need} seeds or a larger alpha"
        )
    n_ref, rounds = len(p.refine.seeds), p.refine.rounds
    if rounds * 2 / 2**n_ref > alpha:  # a lone significant round's BH q over the rounds is at least rounds x 2 / 2^n
        need = next(n for n in range(1, 64) if rounds * 2 / 2**n <= alpha)
        raise ParamsError(
            f"params: {n_ref} 'refine.seeds' cannot reach 'stats.alpha' = {alpha} after Benjamini-Hochberg over {rounds} 'refine.rounds': "
            f"the exact paired test's smallest p is 2/2^{n_ref} = {2 / 2**n_ref:.4g}, a lone significant round's q at least "
            f"{rounds} x that = {rounds * 2 / 2**n_ref:.4g}; use at least {need} seeds ({need + 1} to allow one zero difference), fewer rounds or a larger alpha"
        )
    if not is_multiclass(p.data) and "stratified" in p.subsets.variants:
        raise ParamsError(f"params: 'subsets.variants' may include 'stratified' only for multi-class data ({sources.multiclass_sources()}); "
                          "use [global] for multi-label data")
    check_own_data(p)
    if p.refine.rounds * p.refine.fraction >= 1:
        raise ParamsError("params: 'refine.rounds' * 'refine.fraction' must be below 1 (the rounds would remove the whole training set)")
    check_detect(p.detect)
    rank = p.suspects.ranking
    if rank != RECOMMENDED and rank not in p.detect.combinations and registry.column_kind(rank) != registry.MAGNITUDE \
            and rank not in p.influence.methods:
        raise ParamsError(f"params: 'suspects.ranking' = {rank!r} is not computed; use recommended, a name in 'influence.methods' "
                          f"({', '.join(p.influence.methods)}) or a 'detect.combinations' name")


def is_multiclass(data: DataParams) -> bool:
    """Single-label data: as the source's registry entry says (a manifest: without finding columns or separator)."""
    return not sources.get(data.source).is_multilabel(data)


def check_own_data(p: Params) -> None:
    """Cross-key rules of the data sources (sampleval/data/sources.py): each source's required keys, models that fit it."""
    data, model = p.data, p.model.name
    source = sources.get(data.source)
    if source.table != (model in TABLE_MODELS):
        raise ParamsError(f"params: 'model.name' = {model} does not fit 'data.source' = {source.name}; "
                          f"tables take {' or '.join(TABLE_MODELS)}, images take {', '.join(IMAGE_MODELS[:-1])} or {IMAGE_MODELS[-1]}")
    for key, what in source.requires.items():
        if getattr(data, key) is None:
            raise ParamsError(f"params: 'data.{key}' is null but data.source = {source.name}; set it to the {what}")
    if data.image_size is None and not source.image_files:
        raise ParamsError(f"params: 'data.image_size' may be null only for {'/'.join(sources.image_file_sources())} (the images' own size); "
                          f"give a size for {source.name}")
    if callable(source.multilabel) and data.finding_columns and data.label_separator:  # multi-label as these keys say
        raise ParamsError("params: 'data.finding_columns' and 'data.label_separator' are two ways to give multi-label findings; set only one")
    if source.table and p.train.augment:
        raise ParamsError(f"params: 'train.augment' must be false for data.source = {source.name} (augmentation shifts image pixels)")
    if source.size_checked and model in LARGE_IMAGE_MODELS and data.image_size is not None and data.image_size < 32:
        raise ParamsError(f"params: 'data.image_size' must be >= 32 for {'/'.join(LARGE_IMAGE_MODELS)}")


def resolve_noise(noise: NoiseParams, source: str) -> NoiseParams:
    """``noise.kind: auto`` (the default): the source's ``default_noise`` (sampleval/data/sources.py):
    ``pairwise`` for the embedded digits, whose default
    pairs ([[9, 4]]) inject the labelling-bias paper's 9 -> 4 noise so the pipeline has
    something to find, and ``none`` for every other source (your own data, chest X-rays): their
    labels are used as given unless ``noise.kind`` asks for ``uniform`` or ``pairwise`` noise
    (e.g. to benchmark detection on them). Any other kind is returned unchanged."""
    if noise.kind != "auto":
        return noise
    return dataclasses.replace(noise, kind=sources.get(source).default_noise)


def typed(params: dict) -> Params:
    """The frozen :class:`Params` of a mapping: checked key by key (:func:`validate`), then
    across sections (:func:`check_consistency`), with ``noise.kind: auto`` resolved. What
    stages and library entry points receive; a bad value fails naming the key."""
    p = from_params(Params, validate(params))
    check_consistency(p)
    return dataclasses.replace(p, noise=resolve_noise(p.noise, p.data.source))


def load(path: str | Path = "params.yaml") -> Params:
    """params.yaml as the typed :class:`Params` (every stage's first call, through ``stages._common.start``)."""
    return typed(load_params(path))


def load_params(path: str | Path = "params.yaml") -> dict:
    """params.yaml as a mapping, checked key by key (defaults filled in); :func:`load` gives the typed, fully checked form."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"params: {path} not found; run from the repository root or pass the params file")
    try:
        params = read_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"params: {path} is not valid YAML ({exc.__class__.__name__}); fix the syntax") from exc
    return validate(params)
