"""params' ``influence`` section (:class:`InfluenceParams`), the settings every estimator reads
(:class:`InfluenceSettings`, :data:`SETTINGS`) and TracIn's directional-derivative methods
(:data:`METHODS`, used by :func:`sampleval.influence.core.directional_derivatives`).

Standard library only: params validation imports it in every stage before any work. The
allowed estimator names and options are read from :mod:`sampleval.influence.registry` when
params are validated, so an estimator registered at run time is accepted.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sampleval.influence import registry
from sampleval.schema import Defaulted, Spec, choice, integer, is_integral, list_of, number, setting

METHODS = ("central", "jvp")  # directional derivatives: central differences (faster) or forward-mode AD (exact)

# the settings every estimator may read, the one list (a job's spec, the context, the params deps)
SETTINGS = ("batch_size", "damping", "cg_iterations", "tracin_method")


def estimator_names() -> tuple[str, ...]:
    """The registered estimators (read at validation time)."""
    return tuple(registry.ESTIMATORS)


def estimator_options_schema() -> dict:
    """``influence.options``: one mapping per registered estimator, one key per field of its
    options dataclass, checked as the dataclass field says (sampleval/influence/registry.py).
    An estimator left out gets its dataclass's defaults, so a new estimator needs no params
    entry; a mapping that is given names every field (a missing one is a typo's sign)."""
    return {
        name: Defaulted({f.name: Spec(f.metadata["check"], f.metadata["allowed"]) for f in dataclasses.fields(e.options)},
                        lambda e=e: dataclasses.asdict(e.options()))
        for name, e in registry.ESTIMATORS.items()
    }


@dataclass(frozen=True)
class InfluenceParams:
    methods: list[str] = setting(list_of(estimator_names), "the estimators the influence stage runs (sampleval/influence/registry.py)")
    batch_size: int = setting(integer(1, 100000), "samples per batch in the estimators")
    damping: float = setting(number(0, 1e6), "influence functions: H + damping * I")
    cg_iterations: int = setting(integer(1, 10000), "conjugate-gradient iterations (if_cg)")
    tracin_method: str = setting(choice(*METHODS), "TracIn's directional derivatives: central (fast) or jvp (exact)")
    shards: int | str = setting(
        Spec(lambda x: x == "auto" or (is_integral(x) and 1 <= x <= 100000), "auto (= compute.workers) or an integer >= 1",
             coerce=lambda x: x if x == "auto" else int(x)),
        "tracin, self_influence: training-set shards, one executor job each")
    explain_top_k: int = setting(integer(1, 100), "explain: the most helpful/harmful training samples shown per test sample")
    explain_n_test: int = setting(integer(0, 1000), "explain: the test samples explained")
    options: dict = setting(estimator_options_schema, "per estimator, the fields of its options dataclass (registry)")


@dataclass(frozen=True)
class InfluenceSettings:
    """The influence settings every estimator reads (params' ``influence`` section, less the
    list of methods and where they run), with the run's seed and the per-estimator options
    (estimator name -> a dict from params or its options dataclass, :mod:`sampleval.influence.registry`)."""

    batch_size: int = 256
    damping: float = 0.01
    cg_iterations: int = 100
    tracin_method: str = "central"  # directional derivatives: 'central' (faster) or 'jvp' (exact)
    seed: int = 0
    options: dict = field(default_factory=dict)

    @classmethod
    def from_params(cls, influence: "InfluenceParams | InfluenceSettings", seed: int) -> "InfluenceSettings":
        """From params' influence section, or settings already built (only the seed replaced), and the run's seed."""
        return cls(**{k: getattr(influence, k) for k in SETTINGS}, seed=int(seed), options=dict(influence.options or {}))
