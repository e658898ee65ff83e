"""The vocabulary of params settings: checks, typed section dataclasses, schemas built from them.

Each params.yaml section is a frozen dataclass in the package that consumes it (a small,
standard-library-only ``settings`` module there, since every stage validates params before
any work and must not import torch for it); each field says its type, its check (a
:class:`Spec`) and its help text through :func:`setting`. :func:`schema_of` turns such a
class into the schema :func:`sampleval.config.validate` walks; :func:`from_params` turns a
validated mapping into the frozen instance a library entry point receives.

A check's allowed values are read when it runs (:func:`one_of`, :func:`list_of` take a
function), so a name registered at run time (an estimator, a data source) is accepted.

This module imports nothing but the standard library.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable


class ParamsError(ValueError):
    """A bad value in params.yaml; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Spec:
    """A setting's check, the text of what is allowed (or a function giving it) and an optional
    coercion applied to a valid value (integer specs: ``1e4`` -> ``10000``)."""

    check: Callable[[Any], bool]
    text: str | Callable[[], str]
    coerce: Callable[[Any], Any] | None = None

    @property
    def allowed(self) -> str:
        return self.text() if callable(self.text) else self.text


def is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def is_integral(x: Any) -> bool:
    """An int, or a float with an integer value (``1e4`` is a float in YAML 1.2)."""
    return (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())


def one_of(values: Callable[[], Iterable[Any]]) -> Spec:
    """One of ``values()``, read when the check runs (a registry's current names)."""
    return Spec(lambda x: x in tuple(values()), lambda: "one of " + ", ".join(map(str, values())))


def choice(*values: Any) -> Spec:
    return one_of(lambda: values)


def list_of(values: Callable[[], Iterable[str]], min_len: int = 1) -> Spec:
    """A list of at least ``min_len`` distinct values from ``values()``, read when the check runs."""
    def check(x: Any) -> bool:
        allowed = tuple(values())
        return isinstance(x, list) and len(x) >= min_len and len(set(x)) == len(x) and all(v in allowed for v in x)

    return Spec(check, lambda: f"a list of distinct values from {', '.join(values())}")


def subset_of(*values: str, min_len: int = 1) -> Spec:
    return list_of(lambda: values, min_len)


def integer(lo: int | None = None, hi: int | None = None, why: str = "") -> Spec:
    def check(x: Any) -> bool:
        return is_integral(x) and (lo is None or x >= lo) and (hi is None or x <= hi)

    rng = f" in [{lo}, {hi if hi is not None else 'inf'}]" if lo is not None else ""
    return Spec(check, f"an integer{rng}{why}", coerce=int)


def number(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> Spec:
    def check(x: Any) -> bool:
        if not is_number(x):
            return False
        return (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)

    return Spec(check, f"a number in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}")


BOOL = Spec(lambda x: isinstance(x, bool), "true or false")
OPTIONAL_PATH = Spec(lambda x: x is None or (isinstance(x, str) and x != ""), "null or a local file path")
FRACTION = number(0, 1, lo_open=True, hi_open=True)
NONEMPTY = Spec(lambda x: isinstance(x, str) and x != "", "a column name")
OPTIONAL_NAME = Spec(lambda x: x is None or (isinstance(x, str) and x != ""), "null or a column name")
OPTIONAL_NAMES = Spec(lambda x: x is None or (isinstance(x, list) and len(x) >= 1 and len(set(x)) == len(x) and all(isinstance(v, str) and v for v in x)),
                      "null or a list of distinct column names")


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


def class_pairs() -> Spec:
    def check(x: Any) -> bool:
        return isinstance(x, list) and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(v, int) and v >= 0 for v in p) and p[0] != p[1]
            for p in x
        )

    return Spec(check, "a list of [source, target] class pairs with source != target")


@dataclass(frozen=True)
class Defaulted:
    """A schema entry that may be left out of params: validation fills in ``default()`` (the
    estimator options, whose defaults are their options dataclass's)."""

    schema: Any  # a Spec or a nested schema
    default: Callable[[], Any]


# --------------------------------------------------------------------------- dataclass fields


def setting(spec: Spec | Callable[[], dict], help: str):
    """A section dataclass field: its check (a :class:`Spec`, or a function returning a nested
    schema read at validation time, e.g. the estimator registry's options) and its help text."""
    return field(metadata={"spec": spec, "help": help})


def section(cls: type, help: str):
    """A field holding a nested section dataclass (params: a nested mapping)."""
    return field(metadata={"section": cls, "help": help})


def schema_of(cls: type) -> dict:
    """The schema of section dataclass ``cls``: field name -> :class:`Spec`, a nested schema
    (a nested section) or a function returning one (read when validating)."""
    return {f.name: schema_of(f.metadata["section"]) if "section" in f.metadata else f.metadata["spec"] for f in dataclasses.fields(cls)}


def help_of(cls: type, prefix: str = "") -> dict[str, str]:
    """Dotted key -> help text for every field of ``cls`` (nested sections included)."""
    out: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        out[prefix + f.name] = f.metadata["help"]
        if "section" in f.metadata:
            out.update(help_of(f.metadata["section"], f"{prefix}{f.name}."))
    return out


def from_params(cls: type, mapping: dict):
    """The frozen instance of ``cls`` from a validated mapping (nested sections built too)."""
    values = {}
    for f in dataclasses.fields(cls):
        value = mapping[f.name]
        values[f.name] = from_params(f.metadata["section"], value) if "section" in f.metadata else value
    return cls(**values)
