"""The data-source registry: one entry per ``data.source``, and nothing else needs to know it.

An entry names the source, its loader (``"module:function"`` imported on use, or a callable)
with the signature ``loader(data: DataParams, seed) -> (images, table, classes, task, skipped[, extra])``
(:func:`sampleval.data.prepare.prepare_dataset` calls it), and what params validation checks
of it: whether it is a table, reads your own image files (size and channels from the data),
is multi-label for the given ``data`` section, and which ``data.*`` keys it requires.

Adding a source: its loader in its own module and one :class:`Source` entry below (or
``register``). This module imports nothing but the standard library: params validation
reads it in every stage before any work.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable


def _manifest_multilabel(data) -> bool:
    """A manifest is multi-label when it gives finding columns or a label separator."""
    return bool(data.finding_columns or data.label_separator)


@dataclass(frozen=True)
class Source:
    name: str
    loader: str | Callable  # "module:function" (imported on use) or the function itself
    multilabel: bool | Callable[..., bool] = False  # or a function of the data section (DataParams)
    table: bool = False  # features in a table (table models only), not images
    image_files: bool = False  # your own image files: data.image_size may be null (their own size)
    size_checked: bool = True  # resnet18/densenet121 need data.image_size >= 32 (chest X-ray sources: checked by their loader)
    requires: dict[str, str] = field(default_factory=dict)  # data key that must not be null -> what to set it to
    default_noise: str = "none"  # what noise.kind auto means for it (digits: its default 9 -> 4 pairs, something to find)

    def load(self) -> Callable:
        if callable(self.loader):
            return self.loader
        module, func = self.loader.split(":")
        return getattr(importlib.import_module(module), func)

    def is_multilabel(self, data) -> bool:
        """Whether ``data`` (a :class:`sampleval.data.settings.DataParams`) gives multi-label findings."""
        return self.multilabel(data) if callable(self.multilabel) else self.multilabel


_P = "sampleval.data.prepare:"
SOURCES: dict[str, Source] = {
    s.name: s
    for s in [
        Source("digits", _P + "_digits", default_noise="pairwise"),
        Source("nih14", _P + "_xray", multilabel=True, size_checked=False),
        Source("chexpert", _P + "_xray", multilabel=True, size_checked=False),
        Source("table", _P + "_table", table=True, requires={"file": "CSV or parquet table (or sklearn:wine)"}),
        Source("imagefolder", _P + "_folders", image_files=True, requires={"root": "folder of class subfolders"}),
        Source("manifest", _P + "_folders", multilabel=_manifest_multilabel, image_files=True, requires={"file": "manifest CSV"}),
    ]
}


def get(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"unknown data source {name!r} (allowed: {', '.join(SOURCES)})")
    return SOURCES[name]


def names() -> tuple[str, ...]:
    """The registered source names (read when params are validated)."""
    return tuple(SOURCES)


def image_file_sources() -> tuple[str, ...]:
    return tuple(n for n, s in SOURCES.items() if s.image_files)


def multilabel_sources() -> str:
    """The multi-label sources in words: those always multi-label, then those that may be."""
    either = [f"a multi-label {n}" for n, s in SOURCES.items() if callable(s.multilabel)]
    return ", ".join([n for n, s in SOURCES.items() if s.multilabel is True] + either)


def multiclass_sources() -> str:
    """The single-label sources in words: those never multi-label, then those that may be either."""
    either = [f"a single-label {n}" for n, s in SOURCES.items() if callable(s.multilabel)]
    return ", ".join([n for n, s in SOURCES.items() if s.multilabel is False] + either)
