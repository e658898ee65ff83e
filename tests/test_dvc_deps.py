"""dvc.yaml's code dependencies equal the import closure of each stage's module.

For every stage ``python -m stages.<name>``, the repository files that ``stages/<name>.py``
imports, transitively (``stages/`` and ``sampleval/`` modules; importing a package means
its ``__init__.py``, and importing a submodule also imports every package above it),
must be exactly the ``stages/``/``sampleval/`` entries of the stage's ``deps`` (files, not
folders): editing a library file then reruns exactly the stages that import it. Imports
inside functions count (they run when the stage runs). The estimator registry imports its
estimators by name on use (``sampleval/estimators.py``, "module:function"): a stage whose
modules call ``run_estimator`` or ``get_estimator`` depends on every module named there.

The second test checks DVC itself agrees, on a temporary repository: after a first
``dvc repro``, editing one library file marks exactly the stages whose closure contains it.
"""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
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
    from sampleval.estimators import ESTIMATORS

    return sorted({e.function.split(":")[0] for e in ESTIMATORS.values()})


def _stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _stage_module(stage: dict) -> str:
    match = re.search(r"python -m (stages\.\w+)", stage["cmd"])
    assert match, f"stage command {stage['cmd']!r} is not `python -m stages.<name>`"
    return match.group(1)


def _code_deps(stage: dict) -> set[str]:
    return {d for d in stage.get("deps", []) if d.split("/")[0] in CODE_ROOTS}


def test_every_stage_lists_exactly_its_import_closure():
    problems = []
    for name, stage in _stages().items():
        expected, listed = import_closure(_stage_module(stage)), _code_deps(stage)
        if expected != listed:
            data = [d for d in stage.get("deps", []) if d.split("/")[0] not in CODE_ROOTS]
            problems.append(
                f"stage '{name}': missing {sorted(expected - listed)}, extra {sorted(listed - expected)}; write deps:\n"
                + "".join(f"      - {d}\n" for d in sorted(expected) + data)
            )
    assert not problems, "dvc.yaml deps differ from the imports:\n" + "\n".join(problems)


def test_closure_follows_relative_and_function_level_imports():
    closure = import_closure("stages.influence")
    assert {"stages/__init__.py", "stages/_common.py", "stages/paths.py", "sampleval/__init__.py", "sampleval/config.py",
            "sampleval/estimators.py", "sampleval/influence/__init__.py", "sampleval/training.py", "sampleval/checkpoints.py",
            "sampleval/models.py"} <= closure  # models: imported inside make_context
    assert "sampleval/plots.py" not in closure and "sampleval/influence/hessian.py" in closure  # runs estimators
    explain = import_closure("stages.explain")
    assert "sampleval/influence/core.py" in explain and "sampleval/influence/hessian.py" not in explain  # runs none


def _run(args: list[str], cwd: Path) -> str:
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    env = {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.e2e
def test_dvc_status_marks_exactly_the_importing_stages(tmp_path):
    """A copy of the code and a dvc.yaml with the same code deps per stage (commands that
    only touch a marker file): editing plots.py, then estimators.py, marks exactly the stages
    whose import closure holds the edited file."""
    for root in CODE_ROOTS:
        shutil.copytree(ROOT / root, tmp_path / root, ignore=shutil.ignore_patterns("__pycache__"))
    stages = _stages()
    synthetic = {
        name: {"cmd": f"python -c \"open('out-{name}', 'w').close()\"", "deps": sorted(_code_deps(s)), "outs": [{f"out-{name}": {"cache": False}}]}
        for name, s in stages.items()
    }
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": synthetic}))
    _run(["git", "init", "-q"], tmp_path)
    _run([sys.executable, "-m", "dvc", "init", "-q"], tmp_path)
    _run([sys.executable, "-m", "dvc", "repro", "-q"], tmp_path)
    for edited in ("sampleval/plots.py", "sampleval/estimators.py"):
        original = (tmp_path / edited).read_text()
        (tmp_path / edited).write_text(original + "\n# edited\n")
        status = yaml.safe_load(_run([sys.executable, "-m", "dvc", "status", "--json"], tmp_path)) or {}
        expected = {name for name, s in stages.items() if edited in import_closure(_stage_module(s))}
        assert set(status) == expected, (edited, sorted(status), sorted(expected))
        (tmp_path / edited).write_text(original)  # back to the recorded hash: nothing changed
