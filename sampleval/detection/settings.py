"""params' ``detect`` and ``shapes`` sections, the recommendation rules (the one home;
:mod:`.summary` implements them) and the detect section's cross-key rules (:func:`check_detect`).

Standard library only: params validation imports it in every stage before any work; the
ranking names are read from :mod:`sampleval.influence.registry` when params are validated.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sampleval.data.settings import NOISE_KINDS
from sampleval.influence import registry
from sampleval.schema import FRACTION, ParamsError, Spec, choice, class_pairs, integer, list_of, section, seed_list, setting

RULES = ("best_mean", "noise_structure")  # detect.recommend.rule (sampleval.detection.summary)
ALWAYS = ("cleanlab", "random")  # rankings every cell computes, whatever detect.rankings says
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def detect_rankings() -> tuple[str, ...]:
    """The estimators a detection cell can rank with (read at validation time): every registered
    estimator, those with an alias under the alias (cleanlab runs out-of-fold as cleanlab_logreg)."""
    return tuple(n for n, e in registry.ESTIMATORS.items() if e.alias is None) + tuple(e.alias for e in registry.ESTIMATORS.values() if e.alias)


def _noise_setting(spec: Any) -> bool:
    if not isinstance(spec, dict) or not set(spec) <= {"kind", "rate", "pairs", "noise_seed"}:
        return False
    if spec.get("kind") not in NOISE_KINDS or not FRACTION.check(spec.get("rate")):
        return False
    if spec.get("noise_seed") is not None and not integer(0).check(spec["noise_seed"]):
        return False
    pairs = spec.get("pairs", [])
    return class_pairs().check(pairs) and (spec["kind"] == "uniform" or len(pairs) > 0)


NOISE_SETTINGS = Spec(
    lambda x: isinstance(x, dict) and len(x) > 0 and all(isinstance(k, str) and _NAME.match(k) and _noise_setting(v) for k, v in x.items()),
    "a mapping of names (lower case, digits, - _ .) to {kind: uniform|pairwise, rate: (0, 1), pairs: [[source, target], ...] (pairwise), noise_seed: optional integer}",
)
NAME_LIST = Spec(lambda x: isinstance(x, list) and len(x) >= 1 and len(set(x)) == len(x) and all(isinstance(v, str) for v in x), "a list of distinct names")
COMBINATIONS = Spec(
    lambda x: isinstance(x, dict)
    and all(isinstance(k, str) and _NAME.match(k) and isinstance(v, list) and len(v) >= 2 and all(isinstance(c, str) for c in v) for k, v in x.items()),
    "a mapping of names to lists of at least two rankings",
)


@dataclass(frozen=True)
class RecommendParams:
    rule: str = setting(choice(*RULES), "how detect-summary chooses the recommended ranking on the development cells")


@dataclass(frozen=True)
class DetectParams:
    settings: dict = setting(NOISE_SETTINGS, "name -> label noise injected in the training split of a sweep cell")
    run: list[str] = setting(NAME_LIST, "the settings the sweep runs")
    seeds: list[int] = setting(seed_list(3), "one cell per (setting, seed): the noise draw and the baseline's seed")
    rankings: list[str] = setting(list_of(detect_rankings), "estimators ranked in every cell (cleanlab and random always run)")
    combinations: dict = setting(COMBINATIONS, "name -> rankings whose normalised ranks are averaged")
    recommend: RecommendParams = section(RecommendParams, "the recommended ranking")
    cleanlab_folds: int = setting(integer(2, 20), "K-fold cross-validation for cleanlab's out-of-fold probabilities")
    development_seeds: list[int] = setting(Spec(lambda x: isinstance(x, list) and all(integer(0).check(v) for v in x), "a list of seeds"),
                                           "the cells the recommendation rule chooses on; the other seeds are held out")
    stability_setting: str = setting(Spec(lambda x: isinstance(x, str) and x != "", "a setting name"), "baseline-seed stability setting")


@dataclass(frozen=True)
class ShapesParams:
    ranking: str = setting(Spec(lambda x: isinstance(x, str) and x != "", "the name of a ranking column of data/detect/<cell>.parquet, e.g. tracin"),
                           "ranking column whose sorted scores are plotted")
    knn: int = setting(integer(1, 1000), "k nearest training samples for the distance to the training set")


def check_detect(det: DetectParams) -> None:
    """Cross-key rules of the detect section (names must refer to what is defined)."""
    unknown = [s for s in det.run + [det.stability_setting] if s not in det.settings]
    if unknown:
        raise ParamsError(f"params: 'detect.run'/'detect.stability_setting' name {unknown}, not in 'detect.settings' ({', '.join(det.settings)})")
    known = set(det.rankings) | set(ALWAYS)
    for name, parts in det.combinations.items():
        if name in known:
            raise ParamsError(f"params: 'detect.combinations.{name}' reuses a ranking name; pick another")
        missing = [p for p in parts if p not in known]
        if missing:
            raise ParamsError(f"params: 'detect.combinations.{name}' uses {missing}; add them to 'detect.rankings' (or use {', '.join(ALWAYS)})")
    extra = [s for s in det.development_seeds if s not in det.seeds]
    if extra:
        raise ParamsError(f"params: 'detect.development_seeds' {extra} are not in 'detect.seeds'")
    if not det.development_seeds:
        raise ParamsError("params: 'detect.development_seeds' is empty; name at least one of 'detect.seeds' (the cells 'detect.recommend.rule' chooses on)")
