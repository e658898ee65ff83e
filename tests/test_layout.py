"""The package layout stays readable: no module over 400 lines, no function over 60 (def line to
last line), no two modules with the same file name in different packages, and package
``__init__.py`` files that hold documentation only (no imports: importing a submodule then
runs nothing else, so that the stages' code dependencies stay narrow).

The top-level ``sampleval/__init__.py`` is the one exception: it imports
:mod:`sampleval.runtime.kernels` first, on purpose, to pin the CPU kernels before numpy or
torch load."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sampleval"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
TOP_LEVEL_IMPORTS = {"sampleval.runtime"}  # sampleval/__init__.py: `from sampleval.runtime import kernels`


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _long_functions(path: Path) -> list[tuple[str, int]]:
    """``(function, lines)`` for each function or method over the limit (nested ones too),
    counted from the ``def`` line (decorators not counted) to the last line."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION_LINES:
                out.append((node.name, n))
    return out


def test_no_module_over_400_lines():
    long = [f"{_name(p)} ({n} lines)" for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by topic): {long}"


def test_no_function_over_60_lines():
    long = [f"{_name(p)}::{name} ({n} lines)" for p in _modules() for name, n in _long_functions(p)]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them into named pieces): {long}"


def test_the_limits_are_measured_def_line_to_last_line(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES - 2))
    path = tmp_path / "m.py"
    path.write_text(f"@decorator\ndef at_limit():\n{body}\n    return x0\n\n\ndef over():\n{body}\n    x = 1\n    return x\n")
    assert _long_functions(path) == [("over", MAX_FUNCTION_LINES + 1)]  # 60 lines from `def` pass (decorator not counted), 61 do not


# one file name every package may have: its params section's dataclasses (sampleval/schema.py)
PER_PACKAGE = ("__init__.py", "settings.py")


def test_no_two_modules_share_a_file_name():
    by_name = defaultdict(list)
    for p in _modules():
        if p.name not in PER_PACKAGE:
            by_name[p.name].append(_name(p))
    same = {k: v for k, v in by_name.items() if len(v) > 1}
    assert not same, f"modules with the same file name in different packages (rename one): {same}"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module or ".")
    return found


def test_package_init_files_hold_documentation_only():
    inits = [p for p in _modules() if p.name == "__init__.py"]
    assert len(inits) >= 2
    bad = {}
    for p in inits:
        allowed = TOP_LEVEL_IMPORTS if p.parent == PACKAGE else set()
        extra = _imports(p) - allowed
        if extra:
            bad[_name(p)] = sorted(extra)
        if p.parent != PACKAGE:
            body = ast.parse(p.read_text()).body
            if not (len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)):
                bad.setdefault(_name(p), []).append("code besides the docstring")
    assert not bad, f"package __init__ files must hold a docstring only (import from the submodule instead): {bad}"
