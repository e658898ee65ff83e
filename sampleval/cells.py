"""The cells of the subset experiment: their keys, where their records live, and the one
reader that ``stats`` and ``report`` share.

A cell is (ranking, variant, strategy, fraction); control cells have ranking ``random``
and serve every ranking. Records (written by ``stages/subset.py`` through
:func:`sampleval.experiment.run_subset_cell`) live at::

    metrics/subsets/<ranking>/<variant>/<strategy>-<fraction>.json     ranked cells
    metrics/subsets/random/<variant>/<direction>-random-<fraction>.json  controls

Record schema: ``ranking, variant, strategy, fraction, n_train,
train_class_composition {class: n}``, ``seeds {seed: {<test metrics>, n_trained, n_chosen,
ids_sha256, flipped_in_chosen, chosen_class_composition {class: n},
chosen_flipped_class_composition {class: n (flipped labels among them, by given label)}}}``
and ``mean``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .subsets import RANDOM, control_of, parse_strategy

# A class whose removal (or non-selection) is this many times the average is flagged
# as stripped: the class-deletion confound.
STRIP_RATIO = 2.0


@dataclass(frozen=True, order=True)
class CellKey:
    ranking: str
    variant: str
    strategy: str
    fraction: float

    @property
    def name(self) -> str:
        return f"{self.ranking}/{self.variant}/{self.strategy}@{self.fraction}"

    def path(self, root: str | Path = "metrics/subsets") -> Path:
        return Path(root) / self.ranking / self.variant / f"{self.strategy}-{self.fraction}.json"


def control_key(cell: CellKey) -> CellKey:
    return CellKey(RANDOM, cell.variant, control_of(cell.strategy), cell.fraction)


def plan(sub: dict) -> list[tuple[CellKey, CellKey]]:
    """Every (strategy cell, control cell) comparison the ``subsets`` params ask for."""
    pairs = []
    for ranking in sub["scores"]:
        for variant in sub["variants"]:
            for strategy in sub["remove_strategies"]:
                for f in sub["remove_fractions"]:
                    pairs.append(CellKey(ranking, variant, strategy, f))
            for f in sub["select_fractions"]:
                pairs.append(CellKey(ranking, variant, "select-helpful", f))
    return [(cell, control_key(cell)) for cell in pairs]


def planned_cells(sub: dict) -> list[CellKey]:
    """Every cell once: the ranked cells in plan order, then the controls (shared across rankings)."""
    pairs = plan(sub)
    return [cell for cell, _ in pairs] + list(dict.fromkeys(control for _, control in pairs))


def load_cells(sub: dict, root: str | Path = "metrics/subsets") -> dict[CellKey, dict]:
    """Read every planned cell; a missing cell or seed is an error (nothing is globbed,
    so stale files from an older, larger matrix never enter)."""
    seeds = [str(s) for s in sub["seeds"]]
    cells = {}
    for key in planned_cells(sub):
        path = key.path(root)
        if not path.exists():
            raise FileNotFoundError(f"subset cell {path} is missing; run `dvc repro` to create it")
        record = json.loads(path.read_text())
        missing = [s for s in seeds if s not in record["seeds"]]
        if missing:
            raise KeyError(f"{path} lacks seeds {missing}; run `dvc repro` to refresh it")
        record["seeds"] = {s: record["seeds"][s] for s in seeds}
        cells[key] = record
    return cells


def metric_by_seed(record: dict, metric: str) -> dict[int, float]:
    return {int(s): float(v[metric]) for s, v in record["seeds"].items()}


def subset_signature(record: dict) -> tuple[str, ...]:
    """The ids trained on, seed by seed: two cells with equal signatures are the same subsets."""
    return tuple(record["seeds"][s]["ids_sha256"] for s in sorted(record["seeds"], key=int))


def composition(record: dict) -> list[dict]:
    """Per class: how much of it the cell removed or selected, against the full training set.

    ``chosen`` is the mean count over seeds (random controls draw per seed), ``chosen_flipped``
    how many of them carry a flipped label;
    ``rate`` = chosen / n_class; ``average_rate`` = chosen samples / training samples;
    ``strip_ratio`` = rate / average_rate for removals, average_rate / rate for selections
    (how many times harder than average the class is hit; inf when a selection keeps none
    of it); ``stripped`` = strip_ratio > STRIP_RATIO.
    """
    direction, _ = parse_strategy(record["strategy"])
    full = record["train_class_composition"]
    per_seed = list(record["seeds"].values())
    n_chosen = float(np.mean([s["n_chosen"] for s in per_seed]))
    average = n_chosen / record["n_train"]
    rows = []
    for cls, n_class in full.items():
        chosen = float(np.mean([s["chosen_class_composition"][cls] for s in per_seed]))
        flipped = float(np.mean([s.get("chosen_flipped_class_composition", {}).get(cls, 0) for s in per_seed]))
        rate = chosen / n_class if n_class else float("nan")
        if direction == "remove":
            ratio = rate / average
        else:
            ratio = float("inf") if rate == 0 else average / rate
        rows.append(
            {
                "class": cls,
                "n_class": int(n_class),
                "train_share": n_class / record["n_train"],
                "chosen": chosen,
                "chosen_flipped": flipped,
                "chosen_share": chosen / n_chosen if n_chosen else float("nan"),
                "rate": rate,
                "average_rate": average,
                "strip_ratio": ratio,
                "stripped": bool(ratio > STRIP_RATIO),
            }
        )
    return rows


def stripped_classes(record: dict) -> list[dict]:
    return [r for r in composition(record) if r["stripped"]]


def comparisons(sub: dict, cells: dict[CellKey, dict], metric: str) -> list[dict]:
    """The inputs of :func:`sampleval.stats.compare` for every planned comparison."""
    out = []
    for cell, control in plan(sub):
        s_rec, c_rec = cells[cell], cells[control]
        out.append(
            {
                "name": cell.name,
                "ranking": cell.ranking,
                "variant": cell.variant,
                "strategy": metric_by_seed(s_rec, metric),
                "control": metric_by_seed(c_rec, metric),
                "signature": (subset_signature(s_rec), subset_signature(c_rec)),
                "fraction": cell.fraction,
                "strategy_name": cell.strategy,
                "control_name": control.name,
            }
        )
    return out
