"""dvc.yaml's code dependencies from the imports: check them, or write them.

Each stage ``python -m stages.<name>`` depends on the repository files that
``stages/<name>.py`` imports, transitively (``stages/`` and ``sampleval/`` modules;
importing a package means its ``__init__.py``, a submodule also imports every package
above it; imports inside functions count). A module that calls ``run_estimator`` or
``get_estimator`` also depends on every module the estimator registry names.

    python scripts/dvc_deps.py          # list the stages whose deps differ (exit 1 if any)
    python scripts/dvc_deps.py --write  # rewrite those deps in dvc.yaml (data deps kept)

``tests/test_dvc_deps.py`` runs the check, so a stale dvc.yaml fails the tests.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CODE_ROOTS = ("stages", "sampleval")


def _module_file(module: str) -> Path | None:
    """``a.b.c`` -> ``a/b/c.py`` or ``a/b/c/__init__.py`` (relative to ROOT), if in the repository."""
    if module.split(".")[0] not in CODE_ROOTS:
        return None
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(ROOT)
    return None


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _imported_modules(path: Path) -> set[str]:
    """Every module an import statement in ``path`` names (absolute, with its parent packages,
    plus ``pkg.name`` for ``from pkg import name`` when that is a module)."""
    tree = ast.parse((ROOT / path).read_text(), str(path))
    parts = list(path.with_suffix("").parts)
    package = parts[:-1] if path.name != "__init__.py" else parts[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.update(_with_parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.update(_with_parents(module))
            for alias in node.names:
                if _module_file(f"{module}.{alias.name}") is not None:
                    found.add(f"{module}.{alias.name}")
    return found


def import_closure(stage_module: str) -> set[str]:
    """Repository files (POSIX paths) that running ``python -m <stage_module>`` imports."""
    todo = _with_parents(stage_module)
    seen: set[str] = set()
    files: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(module)
        if path is None:
            continue
        files.add(path.as_posix())
        todo.extend(_imported_modules(path) - seen)
        if _runs_estimators(path):
            todo.extend(_registry_modules())
    return files


def _runs_estimators(path: Path) -> bool:
    """The module calls the registry's loader (``run_estimator``/``get_estimator``)."""
    if path.as_posix() == "sampleval/influence/__init__.py":  # defines them; importing it runs nothing
        return False
    tree = ast.parse((ROOT / path).read_text())
    return any(
        isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) in ("run_estimator", "get_estimator")
        for n in ast.walk(tree)
    )


def _registry_modules() -> list[str]:
    from sampleval.influence.registry import ESTIMATORS

    return sorted({e.function.split(":")[0] for e in ESTIMATORS.values()})


def _stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _stage_module(stage: dict) -> str:
    match = re.search(r"python -m (stages\.\w+)", stage["cmd"])
    assert match, f"stage command {stage['cmd']!r} is not `python -m stages.<name>`"
    return match.group(1)


def _code_deps(stage: dict) -> set[str]:
    return {d for d in stage.get("deps", []) if d.split("/")[0] in CODE_ROOTS}



def expected_deps(stage: dict) -> list[str]:
    """The deps a stage should list: its import closure (sorted), then its data deps as they are."""
    data = [d for d in stage.get("deps", []) if d.split("/")[0] not in CODE_ROOTS]
    return sorted(import_closure(_stage_module(stage))) + data


def differences() -> dict[str, tuple[list[str], list[str]]]:
    """stage -> (missing, extra) code deps, for every stage whose deps differ."""
    out = {}
    for name, stage in _stages().items():
        expected, listed = import_closure(_stage_module(stage)), _code_deps(stage)
        if expected != listed:
            out[name] = (sorted(expected - listed), sorted(listed - expected))
    return out


def write() -> list[str]:
    """Rewrite the code deps of every differing stage in dvc.yaml's text (comments, anchors
    and data deps stay); a stage whose deps are an alias (``deps: *name``) follows its anchor."""
    stages = _stages()
    lines = (ROOT / "dvc.yaml").read_text().splitlines(keepends=True)
    changed, out, i, current = [], [], 0, None
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^  ([\w@.-]+):\s*$", line)
        if m:
            current = m.group(1)
        out.append(line)
        i += 1
        if current in stages and re.match(r"^    deps:( &\w+)?\s*$", line):
            while i < len(lines) and re.match(r"^      - ", lines[i]):
                i += 1
            deps = expected_deps(stages[current])
            out.extend(f"      - {d}\n" for d in deps)
            if deps != stages[current].get("deps", []):
                changed.append(current)
    (ROOT / "dvc.yaml").write_text("".join(out))
    return changed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite the differing deps in dvc.yaml")
    args = ap.parse_args()
    if args.write:
        for name in write():
            print(f"rewrote deps of {name}")
    diff = differences()
    for name, (missing, extra) in diff.items():
        print(f"stage {name!r}: missing {missing}, extra {extra}")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
