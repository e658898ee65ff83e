"""params.yaml schema and validation.

Every stage calls :func:`load_params` first: an unknown key or a bad value fails
with one line naming the key and what is allowed, before any work is done.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml


class ParamsError(ValueError):
    """A bad value in params.yaml; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Spec:
    check: Callable[[Any], bool]
    allowed: str


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def choice(*values: Any) -> Spec:
    return Spec(lambda x: x in values, "one of " + ", ".join(map(str, values)))


def integer(lo: int | None = None, hi: int | None = None) -> Spec:
    def check(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and (lo is None or x >= lo) and (hi is None or x <= hi)

    rng = f" in [{lo}, {hi if hi is not None else 'inf'}]" if lo is not None else ""
    return Spec(check, f"an integer{rng}")


def number(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> Spec:
    def check(x: Any) -> bool:
        if not _num(x):
            return False
        return (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)

    return Spec(check, f"a number in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}")


BOOL = Spec(lambda x: isinstance(x, bool), "true or false")
OPTIONAL_PATH = Spec(lambda x: x is None or (isinstance(x, str) and x != ""), "null or a local file path")
FRACTION = number(0, 1, lo_open=True, hi_open=True)


def fraction_list(min_len: int = 1) -> Spec:
    def check(x: Any) -> bool:
        return (
            isinstance(x, list)
            and len(x) >= min_len
            and len(set(x)) == len(x)
            and all(FRACTION.check(v) for v in x)
        )

    return Spec(check, "a list of distinct fractions, each strictly between 0 and 1")


def seed_list(min_len: int) -> Spec:
    def check(x: Any) -> bool:
        return (
            isinstance(x, list)
            and len(x) >= min_len
            and len(set(x)) == len(x)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in x)
        )

    return Spec(check, f"a list of at least {min_len} distinct non-negative integers (paired tests need >= {min_len} seeds)")


def subset_of(*values: str, min_len: int = 1) -> Spec:
    def check(x: Any) -> bool:
        return isinstance(x, list) and len(x) >= min_len and len(set(x)) == len(x) and all(v in values for v in x)

    return Spec(check, f"a list of distinct values from {', '.join(values)}")


def class_pairs() -> Spec:
    def check(x: Any) -> bool:
        return isinstance(x, list) and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(v, int) and v >= 0 for v in p) and p[0] != p[1]
            for p in x
        )

    return Spec(check, "a list of [source, target] class pairs with source != target")


MODELS = ("small_cnn", "resnet18", "densenet121")
ESTIMATORS = (
    "tracin",
    "self_influence",
    "tracincp",
    "tracin_last_layer",
    "tracin_randproj",
    "if_last_layer",
    "if_last_layer_miscls",
    "if_cg",
    "if_lissa",
    "if_diag",
    "loss",
    "cleanlab",
)

SCHEMA: dict[str, Any] = {
    "seed": integer(0),
    "data": {
        "source": choice("digits", "nih14", "chexpert"),
        "root": OPTIONAL_PATH,
        "val_fraction": number(0, 1, lo_open=True, hi_open=True),
        "test_fraction": number(0, 1, lo_open=True, hi_open=True),
        "limit": Spec(lambda x: x is None or (isinstance(x, int) and not isinstance(x, bool) and x > 0), "null or a positive integer"),
        "image_size": integer(8, 1024),
        "on_bad_image": choice("fail", "skip"),
        "uncertainty": choice("ones", "zeros", "ignore"),
        "frontal_only": BOOL,
    },
    "noise": {
        "kind": choice("none", "uniform", "pairwise"),
        "rate": number(0, 1, hi_open=True),
        "pairs": class_pairs(),
        "splits": subset_of("train", "val"),
    },
    "model": {
        "name": choice(*MODELS),
        "pretrained": OPTIONAL_PATH,
    },
    "train": {
        "epochs": integer(1, 1000),
        "batch_size": integer(1, 100000),
        "lr": number(0, 10, lo_open=True),
        "weight_decay": number(0, 10),
        "focal_gamma": number(0, 10),
        "label_smoothing": number(0, 1, hi_open=True),
        "pos_weight_clamp": Spec(
            lambda x: x is None or (isinstance(x, list) and len(x) == 2 and all(_num(v) and v > 0 for v in x) and x[0] <= x[1]),
            "null or [low, high] with 0 < low <= high",
        ),
        "augment": BOOL,
        "device": choice("auto", "cpu", "cuda"),
        "amp": BOOL,
        "channels_last": BOOL,
        "compile": BOOL,
        "num_workers": integer(0, 64),
        "cpu_threads": integer(1, 256),
    },
    "influence": {
        "methods": subset_of(*ESTIMATORS),
        "batch_size": integer(1, 100000),
        "damping": number(0, 1e6),
        "cg_iterations": integer(1, 10000),
        "tracin_method": choice("central", "jvp"),
        "explain_top_k": integer(1, 100),
        "explain_n_test": integer(0, 1000),
    },
    "subsets": {
        "score": choice(*ESTIMATORS),
        "remove_fractions": fraction_list(),
        "select_fractions": fraction_list(),
        "seeds": seed_list(6),
        "stratify": BOOL,
    },
    "stats": {
        "metric": choice("accuracy", "macro_f1", "macro_auroc"),
        "alpha": number(0, 1, lo_open=True, hi_open=True),
        "n_bootstrap": integer(100, 1000000),
    },
    "fidelity": {
        "n_points": integer(3, 10000),
        "seeds": seed_list(1),
        "n_subsets": integer(3, 10000),
        "subset_seeds": seed_list(1),
        "subset_fraction": FRACTION,
        "epoch": Spec(lambda x: x == "selected" or (isinstance(x, int) and not isinstance(x, bool) and x >= 1),
                      "selected (the baseline's best epoch) or an epoch number >= 1"),
        "n_bootstrap": integer(200, 100000),
        "tracin_checkpoints": Spec(
            lambda x: isinstance(x, list) and len(set(x)) == len(x)
            and all(isinstance(v, str) and (v in ("all", "up_to_selected") or (v.startswith("burn_in_") and v[8:].isdigit() and int(v[8:]) >= 1)) for v in x),
            "a list of distinct TracIn checkpoint variants: all, up_to_selected, burn_in_K (K >= 1); [] for none",
        ),
    },
}


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
        if key not in params:
            raise ParamsError(f"params: missing key '{name}'")
        value = params[key]
        if isinstance(spec, dict):
            validate(value, spec, prefix=f"{name}.")
        elif not spec.check(value):
            raise ParamsError(f"params: '{name}' = {value!r} is not allowed; expected {spec.allowed}")
    return params


def check_consistency(params: dict) -> None:
    """Cross-key rules that a per-key schema cannot express."""
    if params["data"]["val_fraction"] + params["data"]["test_fraction"] >= 0.9:
        raise ParamsError("params: 'data.val_fraction' + 'data.test_fraction' must be below 0.9 to leave a training set")
    if params["subsets"]["score"] not in params["influence"]["methods"]:
        raise ParamsError(
            f"params: 'subsets.score' = {params['subsets']['score']!r} must be one of 'influence.methods' "
            f"({', '.join(params['influence']['methods'])})"
        )
    if params["data"]["source"] == "digits" and params["model"]["name"] != "small_cnn" and params["data"]["image_size"] < 32:
        raise ParamsError("params: 'data.image_size' must be >= 32 for resnet18/densenet121")


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"params: {path} not found; run from the repository root or pass the params file")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"params: {path} is not valid YAML ({exc.__class__.__name__}); fix the syntax") from exc
    validate(params)
    check_consistency(params)
    return params
