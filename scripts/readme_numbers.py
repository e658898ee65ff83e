"""README numbers that quote a run's files: check them, or rewrite them from the files.

Every number in README.md that comes from a metrics file is marked, invisibly when the
Markdown is rendered::

    q <!-- m: metrics/refine.json#tests.test_accuracy.round_2.p_bh -->0.094<!-- /m -->
    <!-- m: metrics/train.json#test.accuracy %.1f -->95.0<!-- /m --> %

The mark names the file, ``#``, the key path (dots between keys; list indices are numbers;
a key containing dots or slashes is quoted: ``comparisons["tracin/global/remove-harmful@0.05"].p_bh``)
and optionally a format: a Python format spec (``.3f``, ``+.2f``, ``d``), or ``%`` plus
a spec (``%.1f``: the value x 100, for percentages). Without a format, the number keeps
the decimals it has in the README. A Markdown source (``benchmarks/RESULTS-*.md``) has no
keys: its mark (``<!-- m: benchmarks/RESULTS-fidelity.md -->0.27<!-- /m -->``) checks that
the quoted text occurs in that file, and ``--write`` leaves it alone.

    python scripts/readme_numbers.py          # list the marked numbers that differ from their files (exit 1 if any)
    python scripts/readme_numbers.py --write  # rewrite them from the files

``tests/test_readme_numbers.py`` runs the check, so a README figure that no longer matches
the committed metrics fails the tests.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = re.compile(r"<!-- m: (?P<file>[^#\s]+)(?:#(?P<key>\S+))?(?: (?P<fmt>\S+))? -->(?P<text>.*?)<!-- /m -->")
_TOKEN = re.compile(r'\["((?:[^"\\]|\\.)*)"\]|([^.\[\]]+)')


class MarkError(ValueError):
    """A mark that names a missing file or key, or a format that does not apply."""


@dataclass
class Mark:
    file: str
    key: str | None
    fmt: str | None
    text: str
    line: int

    @property
    def where(self) -> str:
        return f"line {self.line}: {self.file}" + (f"#{self.key}" if self.key else "")


def parse_key(key: str) -> list[str | int]:
    """``a.b[\"c.d\"].0`` -> ``['a', 'b', 'c.d', 0]``."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(key):
        if key[pos] == ".":
            pos += 1
            continue
        m = _TOKEN.match(key, pos)
        if not m:
            raise MarkError(f"cannot read the key path {key!r} at {pos}")
        quoted, plain = m.groups()
        parts.append(quoted.replace('\\"', '"') if quoted is not None else (int(plain) if plain.isdigit() else plain))
        pos = m.end()
    return parts


def lookup(data, key: str, where: str):
    value = data
    for part in parse_key(key):
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            raise MarkError(f"{where}: no key {part!r} (fix the mark's key path or the file)") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MarkError(f"{where}: the value {value!r} is not a number")
    return value


def render(value: float, fmt: str | None, current: str) -> str:
    """The text of ``value`` in ``fmt`` (see the module docstring); without one, in ``current``'s decimals."""
    if fmt is None:
        decimals = len(current.split(".")[1]) if "." in current else 0
        if isinstance(value, int) and decimals == 0:
            return str(value)
        fmt = f".{decimals}f"
    scale = 1.0
    if fmt.startswith("%"):
        scale, fmt = 100.0, fmt[1:]
    try:
        return format(value * scale if scale != 1.0 else value, fmt)
    except ValueError as exc:
        raise MarkError(f"format {fmt!r} does not apply to {value!r} ({exc})") from None


def find_marks(text: str) -> list[Mark]:
    marks = []
    for m in MARK.finditer(text):
        marks.append(Mark(m["file"], m["key"], m["fmt"], m["text"], text.count("\n", 0, m.start()) + 1))
    return marks


def _load(root: Path, file: str, cache: dict, where: str):
    if file not in cache:
        path = root / file
        if not path.is_file():
            raise MarkError(f"{where}: {file} does not exist (run `dvc repro`, or fix the mark)")
        cache[file] = json.loads(path.read_text()) if file.endswith(".json") else path.read_text()
    return cache[file]


def expected(mark: Mark, root: Path, cache: dict) -> str:
    """The text the mark should hold, from its file (a Markdown source: the text itself, if found there)."""
    data = _load(root, mark.file, cache, mark.where)
    if mark.key is None:
        if isinstance(data, str) and mark.text in data:
            return mark.text
        raise MarkError(f"{mark.where}: {mark.text!r} does not occur in {mark.file} (update the README from it)")
    if isinstance(data, str):
        raise MarkError(f"{mark.where}: keys need a JSON file")
    return render(lookup(data, mark.key, mark.where), mark.fmt, mark.text)


def check(text: str, root: Path = ROOT) -> list[str]:
    """One line per marked number that differs from its file (or whose mark is broken)."""
    cache: dict = {}
    problems = []
    for mark in find_marks(text):
        try:
            want = expected(mark, root, cache)
        except MarkError as exc:
            problems.append(str(exc))
            continue
        if want != mark.text:
            problems.append(f"{mark.where}: README says {mark.text}, the file gives {want}")
    return problems


def rewrite(text: str, root: Path = ROOT) -> str:
    """``text`` with every keyed mark's number rewritten from its file (a broken mark raises)."""
    cache: dict = {}

    def sub(m: re.Match) -> str:
        mark = Mark(m["file"], m["key"], m["fmt"], m["text"], text.count("\n", 0, m.start()) + 1)
        want = expected(mark, root, cache) if mark.key else mark.text
        return m.group(0).replace(f"-->{mark.text}<!-- /m -->", f"-->{want}<!-- /m -->")

    return MARK.sub(sub, text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="rewrite the marked numbers from their files")
    ap.add_argument("--readme", default=str(ROOT / "README.md"))
    args = ap.parse_args(argv)
    path = Path(args.readme)
    text = path.read_text()
    if args.write:
        try:
            new = rewrite(text, path.parent)
        except MarkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if new != text:
            path.write_text(new)
        print(f"{path}: {len(find_marks(text))} marked numbers, {sum(a != b for a, b in zip(text.splitlines(), new.splitlines()))} lines rewritten")
        problems = check(new, path.parent)
    else:
        problems = check(text, path.parent)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
