"""params' ``suspects`` section: the flagged samples to review (:mod:`.suspects`).

Standard library only: params validation imports it in every stage before any work.
"""
from __future__ import annotations

from dataclasses import dataclass

from sampleval.schema import Spec, integer, setting

RECOMMENDED = "recommended"  # suspects.ranking: the detection summary's recommended ranking


@dataclass(frozen=True)
class SuspectsParams:
    ranking: str = setting(
        Spec(lambda x: isinstance(x, str) and x != "",
             f"{RECOMMENDED} (the detection summary's recommendation), an estimator of influence.methods or a detect.combinations name"),
        "the ranking whose top samples are flagged")
    top_k: int = setting(integer(1, 100000), "rows marked is_suspect and shown in the grid")
