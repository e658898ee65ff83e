"""Did this run reproduce the committed results? Says which check held, and fails if none did.

- Same machine class as the committed results (``.ci/reference.json``; the class comes from
  :func:`sampleval.runtime.kernels.machine_class`: every x86-64 CPU with AVX2 is one class once the
  kernels are pinned): ``dvc.lock`` and every file under ``metrics/`` must be byte-identical.
- Another class (a GPU run, Arm, no AVX2, or ``SAMPLEVAL_NATIVE_KERNELS=1``): the metrics'
  JSON leaves must agree within the stated tolerance (``|a - b| <= abs + rel * |b|``); hashes
  are skipped, and strings, booleans and list lengths must be equal.

Usage: ``python scripts/compare_results.py [--rev HEAD]`` from the repository root, after a run.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / ".ci" / "reference.json"


def _git(*args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=True).stdout


def committed_files(rev: str) -> dict[str, bytes]:
    names = _git("ls-tree", "-r", "--name-only", rev, "--", "dvc.lock", "metrics").decode().split()
    return {n: _git("show", f"{rev}:{n}") for n in names}


def current_files() -> dict[str, bytes]:
    files = {"dvc.lock": (ROOT / "dvc.lock").read_bytes()} if (ROOT / "dvc.lock").exists() else {}
    for p in sorted((ROOT / "metrics").rglob("*")):
        if p.is_file():
            files[p.relative_to(ROOT).as_posix()] = p.read_bytes()
    return files


def leaves(obj, prefix: str = ""):
    """(path, value) for every leaf of a JSON document."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list):
        yield f"{prefix}#len", len(obj)
        for i, v in enumerate(obj):
            yield from leaves(v, f"{prefix}[{i}]")
    else:
        yield prefix, obj


def compare_json(new: bytes, old: bytes, tol: dict, ignore: set[str]) -> list[str]:
    """Leaves of ``new`` that differ from ``old`` beyond the tolerance (a line each)."""
    a, b = dict(leaves(json.loads(new))), dict(leaves(json.loads(old)))
    problems = []
    for key in sorted(set(a) | set(b)):
        if any(part in ignore for part in key.replace("[", ".").split(".")):
            continue
        if key not in a or key not in b:
            problems.append(f"{key}: only in {'the new run' if key in a else 'the committed file'}")
            continue
        x, y = a[key], b[key]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
        if numeric and not key.endswith("#len"):
            if not (math.isclose(x, y, rel_tol=tol["rel"], abs_tol=tol["abs"]) or (math.isnan(x) and math.isnan(y))):
                problems.append(f"{key}: {x} vs committed {y}")
        elif x != y:
            problems.append(f"{key}: {x!r} vs committed {y!r}")
    return problems


def machine_class() -> str:
    sys.path.insert(0, str(ROOT))
    from sampleval.runtime import kernels

    cls = kernels.machine_class()
    try:
        import torch

        if torch.cuda.is_available():
            return f"cuda-{torch.cuda.get_device_name(0).replace(' ', '_')}"
    except ImportError:
        pass
    return cls


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="HEAD", help="the commit holding the reference results")
    args = ap.parse_args(argv)
    ref = json.loads(REFERENCE.read_text())
    old, new = committed_files(args.rev), current_files()
    here = machine_class()
    differ = sorted(n for n in set(old) | set(new) if old.get(n) != new.get(n))
    if not differ:
        print(f"byte-identical: dvc.lock and {len(new) - 1} metrics files match the committed results (machine class {here})")
        return 0
    if here == ref["machine_class"]:
        print(f"NOT reproduced: this machine is of the reference class {here}, so the results must be byte-identical, but {len(differ)} files differ:")
        for name in differ:
            print(f"  {name}")
            if name.endswith(".json") and name in old and name in new:
                for line in compare_json(new[name], old[name], {"abs": 0.0, "rel": 0.0}, set(ref["ignore_keys"]))[:5]:
                    print(f"    {line}")
        return 1
    tol, ignore = ref["tolerance"], set(ref["ignore_keys"])
    problems, compared = [], 0
    for name in sorted(n for n in set(old) | set(new) if n.startswith("metrics/") and n.endswith(".json")):
        if name not in old or name not in new:
            problems.append(f"{name}: only in {'the new run' if name in new else 'the committed results'}")
            continue
        compared += 1
        problems += [f"{name}: {line}" for line in compare_json(new[name], old[name], tol, ignore)]
    if problems:
        print(f"NOT within tolerance (machine class {here}, reference {ref['machine_class']}; abs {tol['abs']} + rel {tol['rel']}): {len(problems)} leaves differ:")
        print("\n".join(f"  {p}" for p in problems[:40]))
        return 1
    print(f"within tolerance: machine class {here} differs from the reference {ref['machine_class']}, so bytes may differ "
          f"({len(differ)} files do); the {compared} metrics JSON files agree within abs {tol['abs']} + rel {tol['rel']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
