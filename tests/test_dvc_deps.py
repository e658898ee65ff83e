"""dvc.yaml's code dependencies equal the import closure of each stage's module.

For every stage ``python -m stages.<name>``, the repository files that ``stages/<name>.py``
imports, transitively (``stages/`` and ``sampleval/`` modules; importing a package means
its ``__init__.py``, and importing a submodule also imports every package above it),
must be exactly the ``stages/``/``sampleval/`` entries of the stage's ``deps`` (files, not
folders): editing a library file then reruns exactly the stages that import it. Imports
inside functions count (they run when the stage runs). The estimator registry imports its
estimators by name on use (``sampleval/influence/registry.py``, "module:function"): a stage whose
modules call ``run_estimator`` or ``get_estimator`` depends on every module named there.

The second test checks DVC itself agrees, on a temporary repository: after a first
``dvc repro``, editing one library file marks exactly the stages whose closure contains it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from dvc_deps import CODE_ROOTS, ROOT, _code_deps, _stage_module, _stages, differences, expected_deps, import_closure  # noqa: E402


def test_every_stage_lists_exactly_its_import_closure():
    stages = _stages()
    problems = [
        f"stage '{name}': missing {missing}, extra {extra}; write deps:\n" + "".join(f"      - {d}\n" for d in expected_deps(stages[name]))
        for name, (missing, extra) in differences().items()
    ]
    assert not problems, "dvc.yaml deps differ from the imports (`python scripts/dvc_deps.py --write` fixes them):\n" + "\n".join(problems)


def test_closure_follows_relative_and_function_level_imports():
    closure = import_closure("stages.influence")
    assert {"stages/__init__.py", "stages/_common.py", "stages/paths.py", "sampleval/__init__.py", "sampleval/config.py",
            "sampleval/influence/registry.py", "sampleval/influence/__init__.py", "sampleval/training/loop.py", "sampleval/training/checkpoints.py",
            "sampleval/training/models.py"} <= closure  # models: imported inside make_context
    assert "sampleval/reporting/figures.py" not in closure and "sampleval/influence/hessian.py" in closure  # runs estimators
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
    for edited in ("sampleval/reporting/figures.py", "sampleval/influence/registry.py"):
        original = (tmp_path / edited).read_text()
        (tmp_path / edited).write_text(original + "\n# edited\n")
        status = yaml.safe_load(_run([sys.executable, "-m", "dvc", "status", "--json"], tmp_path)) or {}
        expected = {name for name, s in stages.items() if edited in import_closure(_stage_module(s))}
        assert set(status) == expected, (edited, sorted(status), sorted(expected))
        (tmp_path / edited).write_text(original)  # back to the recorded hash: nothing changed


def test_a_plotting_edit_reruns_no_training():
    """Figures are drawn by stages that train nothing: no stage that retrains (train, fidelity,
    subsets, refine, detect, influence) imports sampleval/reporting/figures.py, and the fidelity figure is the
    figures stage's output, drawn from fidelity's committed numbers."""
    stages = _stages()
    training = ("train", "influence", "fidelity", "subsets", "refine", "detect")
    assert not [name for name in training if "sampleval/reporting/figures.py" in import_closure(_stage_module(stages[name]))]
    figures = stages["figures"]
    assert "sampleval/reporting/figures.py" in import_closure(_stage_module(figures))
    assert "metrics/fidelity.json" in figures["deps"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in figures["outs"]]
    assert "plots/fidelity.png" in outs
    assert not any("plots/fidelity.png" in (next(iter(o)) if isinstance(o, dict) else o) for o in stages["fidelity"].get("outs", []))
