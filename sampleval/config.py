"""params.yaml schema and validation.

Every stage calls :func:`load_params` first: an unknown key or a bad value fails
with one line naming the key and what is allowed, before any work is done.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from . import estimators


class ParamsError(ValueError):
    """A bad value in params.yaml; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Spec:
    check: Callable[[Any], bool]
    allowed: str
    coerce: Callable[[Any], Any] | None = None  # applied to a valid value (integer specs: 1e4 -> 10000)


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


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def choice(*values: Any) -> Spec:
    return Spec(lambda x: x in values, "one of " + ", ".join(map(str, values)))


def _integral(x: Any) -> bool:
    """An int, or a float with an integer value (``1e4`` is a float in YAML 1.2)."""
    return (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())


def integer(lo: int | None = None, hi: int | None = None, why: str = "") -> Spec:
    def check(x: Any) -> bool:
        return _integral(x) and (lo is None or x >= lo) and (hi is None or x <= hi)

    rng = f" in [{lo}, {hi if hi is not None else 'inf'}]" if lo is not None else ""
    return Spec(check, f"an integer{rng}{why}", coerce=int)


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


def seed_list(min_len: int, max_len: int = 1000) -> Spec:
    def check(x: Any) -> bool:
        return (
            isinstance(x, list)
            and min_len <= len(x) <= max_len
            and len(set(x)) == len(x)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in x)
        )

    return Spec(check, f"a list of {min_len} to {max_len} distinct non-negative integers (paired tests need >= {min_len} seeds)")


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


MODELS = ("small_cnn", "resnet18", "densenet121", "logistic", "mlp")
TABLE_MODELS = ("logistic", "mlp")
SOURCES = ("digits", "nih14", "chexpert", "table", "imagefolder", "manifest")
IMAGE_FILE_SOURCES = ("imagefolder", "manifest")  # your own images: size and channels from the data
NONEMPTY = Spec(lambda x: isinstance(x, str) and x != "", "a column name")
OPTIONAL_NAME = Spec(lambda x: x is None or (isinstance(x, str) and x != ""), "null or a column name")
OPTIONAL_NAMES = Spec(lambda x: x is None or (isinstance(x, list) and len(x) >= 1 and len(set(x)) == len(x) and all(isinstance(v, str) and v for v in x)),
                      "null or a list of distinct column names")
ESTIMATORS = tuple(estimators.ESTIMATORS)  # the registry's names (sampleval/estimators.py)


def estimator_options_schema() -> dict:
    """``influence.options``: one mapping per registered estimator, one key per field of its
    options dataclass, checked as the dataclass field says (sampleval/estimators.py)."""
    return {
        name: {key: Spec(check, allowed) for key, (check, allowed) in estimators.option_specs(name).items()}
        for name in estimators.ESTIMATORS
    }


SCHEMA: dict[str, Any] = {
    "seed": integer(0),
    "data": {
        "source": choice(*SOURCES),
        "root": OPTIONAL_PATH,
        "val_fraction": number(0, 1, lo_open=True, hi_open=True),
        "test_fraction": number(0, 1, lo_open=True, hi_open=True),
        "limit": Spec(lambda x: x is None or (isinstance(x, int) and not isinstance(x, bool) and x > 0), "null or a positive integer"),
        "image_size": Spec(lambda x: x is None or integer(8, 1024).check(x), "an integer in [8, 1024], or null (imagefolder/manifest: the images' own size)",
                           coerce=lambda x: None if x is None else int(x)),
        "on_bad_image": choice("fail", "skip"),
        "uncertainty": choice("ones", "zeros", "ignore"),
        "frontal_only": BOOL,
        # your own data (issue 13; README "Use your own data"): table, imagefolder, manifest
        "file": OPTIONAL_PATH,
        "label_column": NONEMPTY,
        "path_column": NONEMPTY,
        "group_column": OPTIONAL_NAME,
        "id_column": OPTIONAL_NAME,
        "finding_columns": OPTIONAL_NAMES,
        "label_separator": Spec(lambda x: x is None or (isinstance(x, str) and len(x) >= 1), "null or a separator string such as '|'"),
        "feature_columns": OPTIONAL_NAMES,
        "categorical_columns": OPTIONAL_NAMES,
        "channels": Spec(lambda x: x in ("auto", 1, 3), "auto (RGB when any image has colour, else grayscale), 1 or 3"),
    },
    "noise": {
        "kind": choice("auto", "none", "uniform", "pairwise"),  # auto: resolve_noise
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
        "shards": Spec(lambda x: x == "auto" or (_integral(x) and 1 <= x <= 100000), "auto (= compute.workers) or an integer >= 1",
                       coerce=lambda x: x if x == "auto" else int(x)),
        "explain_top_k": integer(1, 100),
        "explain_n_test": integer(0, 1000),
        "options": estimator_options_schema(),
    },
    "subsets": {
        "scores": subset_of(*ESTIMATORS),
        "variants": subset_of("global", "stratified"),
        "remove_strategies": subset_of("remove-harmful", "remove-helpful"),
        "remove_fractions": fraction_list(),
        "select_fractions": fraction_list(),
        "seeds": seed_list(6, 20),
    },
    "stats": {
        "metric": choice("accuracy", "macro_f1", "macro_auroc"),
        "alpha": number(0, 1, lo_open=True, hi_open=True),
        "n_bootstrap": integer(100, 1000000),
    },
    "fidelity": {
        "n_points": integer(3, 10000, why=" (correlations need at least 3 points)"),
        "seeds": seed_list(1),
        "n_subsets": integer(3, 10000),
        "subset_seeds": seed_list(1),
        "subset_fraction": FRACTION,
        "epoch": Spec(lambda x: x == "selected" or (isinstance(x, int) and not isinstance(x, bool) and x >= 1),
                      "selected (the baseline's best epoch) or an epoch number >= 1"),
        "n_bootstrap": integer(200, 100000),
        "tracin_checkpoints": Spec(
            lambda x: isinstance(x, list) and len(set(x)) == len(x) and all(estimators.is_tracin_variant(v) for v in x),
            f"a list of distinct TracIn checkpoint variants: {estimators.TRACIN_VARIANTS_ALLOWED}; [] for none",
        ),
    },
    "checks": {
        "allow_chance_level": BOOL,
    },
    # where independent jobs run: sampleval/compute.py
    "compute": {
        "backend": choice("local", "ray"),
        "workers": Spec(lambda x: x == "auto" or (_integral(x) and 1 <= x <= 4096), "auto (the number of cores) or an integer >= 1"),
        "address": Spec(lambda x: x is None or (isinstance(x, str) and (x == "auto" or ":" in x)),
                        "null (start a local Ray instance), auto (the `ray start --head` cluster here) or host:port"),
        "gpus_per_job": number(0, 64),
        "max_retries": integer(0, 100),
        "job_cache": BOOL,
    },
    # refine / shapes (issue 17 B): see sampleval/refine.py and sampleval/score_shapes.py
    "refine": {
        "ranking": choice(*ESTIMATORS),
        "dcs_score": choice(*estimators.signed_influences()),
        "rounds": integer(1, 50),
        "fraction": number(0, 0.5, lo_open=True, hi_open=True),
        "seeds": seed_list(6, 20),  # and enough for BH over the rounds to reach stats.alpha (check_consistency)
        "heldout_fraction": number(0, 1, lo_open=True, hi_open=True),
    },
    "shapes": {
        "ranking": Spec(lambda x: isinstance(x, str) and x != "", "the name of a ranking column of data/detect/<cell>.parquet, e.g. tracin"),
        "knn": integer(1, 1000),
    },
    # review loop: sampleval/suspects.py and sampleval/corrections.py
    "suspects": {
        "ranking": Spec(lambda x: isinstance(x, str) and x != "",
                        "recommended (the detection summary's recommendation), an estimator of influence.methods or a detect.combinations name"),
        "top_k": integer(1, 100000),
    },
    "corrections": {
        "seeds": seed_list(8, 20),
    },
}


# --- detect (label-error detection sweep, sampleval/detection) ---
DETECT_RANKINGS = tuple(e for e in ESTIMATORS if e != "cleanlab") + ("cleanlab_logreg",)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def _noise_setting(spec: Any) -> bool:
    if not isinstance(spec, dict) or not set(spec) <= {"kind", "rate", "pairs", "noise_seed"}:
        return False
    if spec.get("kind") not in ("uniform", "pairwise") or not FRACTION.check(spec.get("rate")):
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
DETECT_SCHEMA = {
    "settings": NOISE_SETTINGS,
    "run": NAME_LIST,
    "seeds": seed_list(3),
    "rankings": subset_of(*DETECT_RANKINGS),
    "combinations": COMBINATIONS,
    "recommend": {"rule": choice("best_mean", "noise_structure")},  # sampleval.detection.summary.RULES
    "cleanlab_folds": integer(2, 20),
    "development_seeds": Spec(lambda x: isinstance(x, list) and all(integer(0).check(v) for v in x), "a list of seeds"),
    "stability_setting": Spec(lambda x: isinstance(x, str) and x != "", "a setting name"),
}


def check_detect(det: dict) -> None:
    """Cross-key rules of the detect section (names must refer to what is defined)."""
    unknown = [s for s in det["run"] + [det["stability_setting"]] if s not in det["settings"]]
    if unknown:
        raise ParamsError(f"params: 'detect.run'/'detect.stability_setting' name {unknown}, not in 'detect.settings' ({', '.join(det['settings'])})")
    known = set(det["rankings"]) | {"cleanlab", "random"}
    for name, parts in det["combinations"].items():
        if name in known:
            raise ParamsError(f"params: 'detect.combinations.{name}' reuses a ranking name; pick another")
        missing = [p for p in parts if p not in known]
        if missing:
            raise ParamsError(f"params: 'detect.combinations.{name}' uses {missing}; add them to 'detect.rankings' (or use cleanlab, random)")
    extra = [s for s in det["development_seeds"] if s not in det["seeds"]]
    if extra:
        raise ParamsError(f"params: 'detect.development_seeds' {extra} are not in 'detect.seeds'")
    if not det["development_seeds"]:
        raise ParamsError("params: 'detect.development_seeds' is empty; name at least one of 'detect.seeds' (the cells 'detect.recommend.rule' chooses on)")


SCHEMA["detect"] = DETECT_SCHEMA
# --- end detect ---


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


def check_consistency(params: dict) -> None:
    """Cross-key rules that a per-key schema cannot express."""
    if params["data"]["val_fraction"] + params["data"]["test_fraction"] >= 0.9:
        raise ParamsError("params: 'data.val_fraction' + 'data.test_fraction' must be below 0.9 to leave a training set")
    missing = [s for s in params["subsets"]["scores"] if s not in params["influence"]["methods"]]
    if missing:
        raise ParamsError(
            f"params: 'subsets.scores' lists {', '.join(missing)}, not in 'influence.methods' "
            f"({', '.join(params['influence']['methods'])}); add it there or remove it here"
        )
    n_seeds, alpha = len(params["subsets"]["seeds"]), params["stats"]["alpha"]
    if 2 / 2**n_seeds > alpha:  # the exact two-sided paired test over n seeds cannot go below 2 / 2^n
        need = next(n for n in range(1, 64) if 2 / 2**n <= alpha)
        raise ParamsError(
            f"params: {n_seeds} 'subsets.seeds' cannot reach 'stats.alpha' = {alpha}: the exact paired test's smallest "
            f"p is 2/2^{n_seeds} = {2 / 2**n_seeds:.4g}; use at least {need} seeds or a larger alpha"
        )
    n_ref, rounds = len(params["refine"]["seeds"]), params["refine"]["rounds"]
    if rounds * 2 / 2**n_ref > alpha:  # a lone significant round's BH q over the rounds is at least rounds x 2 / 2^n
        need = next(n for n in range(1, 64) if rounds * 2 / 2**n <= alpha)
        raise ParamsError(
            f"params: {n_ref} 'refine.seeds' cannot reach 'stats.alpha' = {alpha} after Benjamini-Hochberg over {rounds} 'refine.rounds': "
            f"the exact paired test's smallest p is 2/2^{n_ref} = {2 / 2**n_ref:.4g}, a lone significant round's q at least "
            f"{rounds} x that = {rounds * 2 / 2**n_ref:.4g}; use at least {need} seeds ({need + 1} to allow one zero difference), fewer rounds or a larger alpha"
        )
    if not is_multiclass(params["data"]) and "stratified" in params["subsets"]["variants"]:
        raise ParamsError("params: 'subsets.variants' may include 'stratified' only for multi-class data (digits, table, imagefolder, a "
                          "single-label manifest); use [global] for multi-label data")
    check_own_data(params)
    if params["refine"]["rounds"] * params["refine"]["fraction"] >= 1:
        raise ParamsError("params: 'refine.rounds' * 'refine.fraction' must be below 1 (the rounds would remove the whole training set)")
    if params["data"]["source"] in ("digits",) + IMAGE_FILE_SOURCES and params["model"]["name"] in ("resnet18", "densenet121") \
            and params["data"]["image_size"] is not None and params["data"]["image_size"] < 32:
        raise ParamsError("params: 'data.image_size' must be >= 32 for resnet18/densenet121")
    check_detect(params["detect"])
    rank = params["suspects"]["ranking"]
    if rank != "recommended" and rank not in params["detect"]["combinations"] and estimators.column_kind(rank) != estimators.MAGNITUDE \
            and rank not in params["influence"]["methods"]:
        raise ParamsError(f"params: 'suspects.ranking' = {rank!r} is not computed; use recommended, a name in 'influence.methods' "
                          f"({', '.join(params['influence']['methods'])}) or a 'detect.combinations' name")


def is_multiclass(data: dict) -> bool:
    """Single-label data: digits, table, imagefolder, a manifest without finding columns or separator."""
    if data["source"] in ("nih14", "chexpert"):
        return False
    return not (data["source"] == "manifest" and (data["finding_columns"] or data["label_separator"]))


def check_own_data(params: dict) -> None:
    """Cross-key rules of the data sources (issue 13): each source's required keys, models that fit it."""
    data, model = params["data"], params["model"]["name"]
    source = data["source"]
    if (source == "table") != (model in TABLE_MODELS):
        raise ParamsError(f"params: 'model.name' = {model} does not fit 'data.source' = {source}; "
                          f"tables take {' or '.join(TABLE_MODELS)}, images take small_cnn, resnet18 or densenet121")
    if source in ("table", "manifest") and data["file"] is None:
        raise ParamsError(f"params: 'data.file' is null but data.source = {source}; set it to the "
                          + ("CSV or parquet table (or sklearn:wine)" if source == "table" else "manifest CSV"))
    if source == "imagefolder" and data["root"] is None:
        raise ParamsError("params: 'data.root' is null but data.source = imagefolder; set it to the folder of class subfolders")
    if data["image_size"] is None and source not in IMAGE_FILE_SOURCES:
        raise ParamsError(f"params: 'data.image_size' may be null only for imagefolder/manifest (the images' own size); give a size for {source}")
    if source == "manifest" and data["finding_columns"] and data["label_separator"]:
        raise ParamsError("params: 'data.finding_columns' and 'data.label_separator' are two ways to give multi-label findings; set only one")
    if source == "table" and params["train"]["augment"]:
        raise ParamsError("params: 'train.augment' must be false for data.source = table (augmentation shifts image pixels)")


def resolve_noise(noise: dict, source: str) -> dict:
    """``noise.kind: auto`` (the default): ``pairwise`` for the embedded digits, whose default
    pairs ([[9, 4]]) inject the labelling-bias paper's 9 -> 4 noise so the pipeline has
    something to find, and ``none`` for every other source (your own data, chest X-rays): their
    labels are used as given unless ``noise.kind`` asks for ``uniform`` or ``pairwise`` noise
    (e.g. to benchmark detection on them). Any other kind is returned unchanged."""
    if noise["kind"] != "auto":
        return noise
    return {**noise, "kind": "pairwise" if source == "digits" else "none"}


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"params: {path} not found; run from the repository root or pass the params file")
    try:
        params = read_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"params: {path} is not valid YAML ({exc.__class__.__name__}); fix the syntax") from exc
    validate(params)
    check_consistency(params)
    params["noise"] = resolve_noise(params["noise"], params["data"]["source"])
    return params
