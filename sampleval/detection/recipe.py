"""What a detection cell is made of, without running one: its noise setting
(:class:`NoiseSetting`), the project's params it reads (:class:`CellRecipe`) and the cells'
clean digits (:func:`clean_digits`). Light to import: the score-shapes stage reads the
cells' images through it without importing the estimators.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sampleval.data.settings import DataParams, NoiseParams
from sampleval.influence.settings import InfluenceSettings

if TYPE_CHECKING:
    from sampleval.training.loop import TrainConfig

BASE_COLUMNS = ["sample_id", "label", "clean_label", "flipped"]  # a cell table's first columns; one float column per ranking follows


def cell_name(setting: str, seed: int) -> str:
    return f"{setting}-s{seed}"


@dataclass
class NoiseSetting:
    name: str
    kind: str  # uniform | pairwise
    rate: float
    pairs: list[list[int]] = field(default_factory=list)
    noise_seed: int | None = None  # fixed noise draw (only the baseline seed varies), or None: the cell seed

    @classmethod
    def from_params(cls, name: str, spec: dict) -> "NoiseSetting":
        return cls(name=name, kind=spec["kind"], rate=float(spec["rate"]), pairs=[list(p) for p in spec.get("pairs") or []], noise_seed=spec.get("noise_seed"))

    def noise(self) -> NoiseParams:
        """The cell's noise as prepare's noise step takes it (training split only)."""
        return NoiseParams(kind=self.kind, rate=self.rate, pairs=self.pairs, splits=["train"])


NO_NOISE = NoiseParams(kind="none", rate=0.0, pairs=[], splits=["train"])


@dataclass(frozen=True)
class CellRecipe:
    """What a cell reads of the project's params (the one place that decides it): the split
    ``seed``, the digits ``data`` section, the training recipe and the influence settings every
    estimator reads (:class:`sampleval.influence.settings.InfluenceSettings`; the cell's seed
    replaces theirs). A sweep job carries it as JSON (:meth:`to_json`), so editing a params key
    no cell reads (``influence.methods``, ``influence.shards``, ...) keeps every cached cell."""

    seed: int
    data: DataParams
    train: "TrainConfig"
    influence: InfluenceSettings

    @classmethod
    def of(cls, params) -> "CellRecipe":
        """The recipe of :class:`sampleval.config.Params`: with another ``data.source`` the
        sweep still runs on digits (8x8, ``data.limit`` applies) with the small CNN."""
        from sampleval.training.loop import TrainConfig

        data, cfg = params.data, TrainConfig.from_params(params)
        if data.source != "digits":
            data = dataclasses.replace(data, image_size=8)
            cfg.model, cfg.pretrained = "small_cnn", None
        return cls(int(params.seed), dataclasses.replace(data, source="digits", root=None), cfg,
                   InfluenceSettings.from_params(params.influence, params.seed))

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "CellRecipe":
        from sampleval.training.loop import TrainConfig

        return cls(int(d["seed"]), DataParams(**d["data"]), TrainConfig(**d["train"]), InfluenceSettings(**d["influence"]))


def clean_digits(recipe: CellRecipe, workdir: Path):
    """The cells' digits without noise, prepared in ``workdir`` (their images: the score-shapes stage reads them)."""
    from sampleval.data.prepared import load_prepared
    from sampleval.data.prepare import prepare_dataset

    prepare_dataset(recipe.data, NO_NOISE, recipe.seed, Path(workdir) / "prepared")
    return load_prepared(Path(workdir) / "prepared")


def noise_seed_of(setting: NoiseSetting, seed: int) -> int:
    """The seed of the cell's noise draw: the setting's fixed ``noise_seed``, else the cell's seed."""
    return seed if setting.noise_seed is None else int(setting.noise_seed)
