"""The cells of the subset experiment: their keys, where their records live, and the one
reader that ``stats`` and ``report`` share.

A cell is (ranking, variant, strategy, fraction); control cells have ranking ``random``
and serve every ranking. Every global ranked cell also has a class-matched control
(:func:`sampleval.experiments.subsets.choose_matched`), which depends on its ranking. Records (written by
``stages/subsets.py`` through :func:`sampleval.experiments.subset_runs.run_subset_cells`) live at::

    metrics/subsets/<ranking>/<variant>/<strategy>-<fraction>.json          ranked cells
    metrics/subsets/<ranking>/global/<strategy>-matched-<fraction>.json     class-matched controls
    metrics/subsets/random/<variant>/<direction>-random-<fraction>.json     controls

Record schema: ``ranking, variant, strategy, fraction, n_train,
train_class_composition {class: n}``, ``seeds {seed: {<test metrics, unrounded>, n_correct,
n_test, n_trained, n_chosen, ids_sha256, flipped_in_chosen, chosen_class_composition {class: n},
chosen_flipped_class_composition {class: n (flipped labels among them, by given label)}}}``
and ``mean``. ``n_correct`` of ``n_test`` test samples are classified correctly (accuracy =
n_correct / n_test exactly; null for multi-label data, whose accuracy is a mean over labels).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sampleval.experiments.subsets import RANDOM, control_of, matched_of, parse_strategy
from sampleval.experiments.settings import SubsetsParams

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


def matched_key(cell: CellKey) -> CellKey:
    """The class-matched random control of a ranked cell (same ranking, variant and fraction)."""
    return CellKey(cell.ranking, cell.variant, matched_of(cell.strategy), cell.fraction)


def matched_plan(sub: SubsetsParams) -> list[tuple[CellKey, CellKey]]:
    """Every (global strategy cell, its class-matched control) comparison."""
    return [(cell, matched_key(cell)) for cell, _ in plan(sub) if cell.variant == "global"]


def plan(sub: SubsetsParams) -> list[tuple[CellKey, CellKey]]:
    """Every (strategy cell, control cell) comparison the ``subsets`` params ask for."""
    pairs = []
    for ranking in sub.scores:
        for variant in sub.variants:
            for strategy in sub.remove_strategies:
                for f in sub.remove_fractions:
                    pairs.append(CellKey(ranking, variant, strategy, f))
            for f in sub.select_fractions:
                pairs.append(CellKey(ranking, variant, "select-helpful", f))
    return [(cell, control_key(cell)) for cell in pairs]


def planned_cells(sub: SubsetsParams) -> list[CellKey]:
    """Every cell once: the ranked cells in plan order, then the controls (shared across rankings),
    then the class-matched controls."""
    pairs = plan(sub)
    return [cell for cell, _ in pairs] + list(dict.fromkeys(control for _, control in pairs)) + [m for _, m in matched_plan(sub)]


def load_cells(sub: SubsetsParams, root: str | Path = "metrics/subsets") -> dict[CellKey, dict]:
    """Read every planned cell; a missing cell or seed is an error (nothing is globbed,
    so stale files from an older, larger matrix never enter)."""
    seeds = [str(s) for s in sub.seeds]
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


def tested_values(record: dict, metric: str) -> tuple[dict[int, float | int], int | None]:
    """What the paired test runs on: ``({seed: value}, n_test)``. Accuracy with correct-counts
    recorded: the integer counts and the test size; otherwise the (unrounded) metric and None."""
    seeds = record["seeds"]
    if metric == "accuracy" and all(v.get("n_correct") is not None for v in seeds.values()):
        sizes = {int(v["n_test"]) for v in seeds.values()}
        if len(sizes) != 1:
            raise ValueError(f"{record['ranking']}/{record['variant']}/{record['strategy']}: test sizes differ between seeds ({sorted(sizes)})")
        return {int(s): int(v["n_correct"]) for s, v in seeds.items()}, sizes.pop()
    return metric_by_seed(record, metric), None


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


CLASS_MATCHED = "class-matched"  # control_kind of the comparisons with a class-matched control


def comparisons(sub: SubsetsParams, cells: dict[CellKey, dict], metric: str) -> list[dict]:
    """The inputs of :func:`sampleval.experiments.stats.compare` for every planned comparison: each ranked
    cell against its random control (``control_kind`` random, named by the cell), then each
    global one against its class-matched control (``control_kind`` class-matched, named
    ``<cell> vs class-matched``). Accuracy is compared on correct-counts (:func:`tested_values`)."""
    out = []
    for kind, pairs in (("random", plan(sub)), (CLASS_MATCHED, matched_plan(sub))):
        for cell, control in pairs:
            s_rec, c_rec = cells[cell], cells[control]
            (s_val, s_n), (c_val, c_n) = tested_values(s_rec, metric), tested_values(c_rec, metric)
            if s_n != c_n:
                raise ValueError(f"{cell.name} and {control.name} were tested on different test sets ({s_n} vs {c_n} samples); rerun `dvc repro`")
            out.append(
                {
                    "name": cell.name if kind == "random" else f"{cell.name} vs {CLASS_MATCHED}",
                    "ranking": cell.ranking,
                    "variant": cell.variant,
                    "strategy": s_val,
                    "control": c_val,
                    "n_test": s_n,
                    "signature": (subset_signature(s_rec), subset_signature(c_rec)),
                    "fraction": cell.fraction,
                    "strategy_name": cell.strategy,
                    "control_name": control.name,
                    "control_kind": kind,
                }
            )
    return out
