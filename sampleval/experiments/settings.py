"""params' ``subsets``, ``stats``, ``fidelity``, ``refine`` and ``corrections`` sections, with the
names they allow (subset strategies and variants: the one home, :mod:`.subsets` uses them).

Standard library only: params validation imports it in every stage before any work; the
estimator names are read from :mod:`sampleval.influence.registry` when params are validated.
"""
from __future__ import annotations

from dataclasses import dataclass

from sampleval.influence import registry
from sampleval.influence.settings import estimator_names
from sampleval.schema import FRACTION, Spec, choice, fraction_list, integer, list_of, number, one_of, seed_list, setting, subset_of

STRATEGIES = ("remove-harmful", "remove-helpful", "select-helpful")  # ranked subset strategies
REMOVE_STRATEGIES = tuple(s for s in STRATEGIES if s.startswith("remove-"))  # subsets.remove_strategies
VARIANTS = ("global", "stratified")  # global ranking or class-stratified
STATS_METRICS = ("accuracy", "macro_f1", "macro_auroc")  # test metrics the subset cells are compared on


@dataclass(frozen=True)
class SubsetsParams:
    scores: list[str] = setting(list_of(estimator_names), "rankings (each in influence.methods); one set of cells each")
    variants: list[str] = setting(subset_of(*VARIANTS), "global ranking and/or class-stratified cells")
    remove_strategies: list[str] = setting(subset_of(*REMOVE_STRATEGIES), "the removal strategies run")
    remove_fractions: list[float] = setting(fraction_list(), "shares of the training set removed")
    select_fractions: list[float] = setting(fraction_list(), "shares of the training set kept (select-helpful)")
    seeds: list[int] = setting(seed_list(6, 20), "retraining seeds of every cell (paired tests)")


@dataclass(frozen=True)
class StatsParams:
    metric: str = setting(choice(*STATS_METRICS), "test metric compared")
    alpha: float = setting(FRACTION, "significance level (after Benjamini-Hochberg)")
    n_bootstrap: int = setting(integer(100, 1000000), "bootstrap resamples of the confidence intervals")


def _epoch(x) -> bool:
    return x == "selected" or (isinstance(x, int) and not isinstance(x, bool) and x >= 1)


@dataclass(frozen=True)
class FidelityParams:
    n_points: int = setting(integer(3, 10000, why=" (correlations need at least 3 points)"), "leave-one-out retrainings (sampled points)")
    seeds: list[int] = setting(seed_list(1), "leave-one-out retraining seeds, paired")
    n_subsets: int = setting(integer(3, 10000), "random subsets for the linear datamodeling score")
    subset_seeds: list[int] = setting(seed_list(1), "retraining seeds per subset")
    subset_fraction: float = setting(FRACTION, "share of the training set each subset keeps")
    epoch: str | int = setting(Spec(_epoch, "selected (the baseline's best epoch) or an epoch number >= 1"), "the epoch every retraining is scored at")
    n_bootstrap: int = setting(integer(200, 100000), "bootstrap resamples for the 95 % CIs")
    tracin_checkpoints: list[str] = setting(
        Spec(lambda x: isinstance(x, list) and len(set(x)) == len(x) and all(registry.is_tracin_variant(v) for v in x),
             f"a list of distinct TracIn checkpoint variants: {registry.TRACIN_VARIANTS_ALLOWED}; [] for none"),
        "TracIn checkpoint variants compared against retraining")


@dataclass(frozen=True)
class RefineParams:
    ranking: str = setting(one_of(estimator_names), "estimator that ranks samples for removal")
    dcs_score: str = setting(one_of(registry.signed_influences), "signed estimator whose scores give the Dataset Contribution Score")
    rounds: int = setting(integer(1, 50), "rounds of scoring, removal and retraining")
    fraction: float = setting(number(0, 0.5, lo_open=True, hi_open=True), "share of the original training set removed per round")
    seeds: list[int] = setting(seed_list(6, 20), "seeds; each trains the refinement and its random control")
    heldout_fraction: float = setting(FRACTION, "share of the validation split held out from selection and scoring")


@dataclass(frozen=True)
class CorrectionsParams:
    seeds: list[int] = setting(seed_list(8, 20), "retraining seeds of the corrections check (paired exact test)")
