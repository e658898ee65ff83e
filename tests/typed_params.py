"""Typed params for tests: the committed params.yaml (:func:`sampleval.config.load`) with the
keys a test changes, as the frozen sections library entry points take."""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from sampleval.config import Params, load
from sampleval.data.settings import DataParams, NoiseParams

ROOT = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def committed() -> Params:
    return load(ROOT / "params.yaml")


def data_params(**changes) -> DataParams:
    """params.yaml's data section (the digits) with ``changes``."""
    return replace(committed().data, **changes)


def noise_params(**changes) -> NoiseParams:
    """params.yaml's resolved noise section (40 % of training 9s -> 4) with ``changes``."""
    return replace(committed().noise, **changes)
