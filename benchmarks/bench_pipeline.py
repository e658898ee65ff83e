"""The fan-out stages of the default pipeline at compute.workers 1 and 2, in one run.

Runs each stage's own command (from dvc.yaml) in this repository, outside DVC, with a copy
of params.yaml whose `compute.workers` is 1, then 2 (through SAMPLEVAL_PARAMS, which every
stage reads), times it, and checks that the outputs are byte-identical across the two worker
counts. Needs the inputs of a finished `dvc repro` in the workspace; it rewrites the stages'
outputs with the same bytes (it fails if they differ).
Usage: python benchmarks/bench_pipeline.py [stage ...]   (default: influence fidelity subsets detect refine)
"""
from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["influence", "fidelity", "subsets", "detect", "refine"]


def digest(paths: list[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        path = ROOT / p
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for f in files:
            if f.suffix in (".png",):  # figures: matplotlib metadata aside, the data behind them is checked
                continue
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def outputs(stage: dict) -> list[str]:
    out = []
    for key in ("outs", "metrics", "plots"):
        for o in stage.get(key, []):
            out.append(next(iter(o)) if isinstance(o, dict) else o)
    return out


def main() -> None:
    names = sys.argv[1:] or STAGES
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    rows = []
    for workers in (1, 2):
        params["compute"]["workers"] = workers
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
            yaml.safe_dump(params, fh, sort_keys=False)
        env = {**os.environ, "SAMPLEVAL_PARAMS": fh.name, "PYTHONPATH": str(ROOT)}
        for name in names:
            jobs = ROOT / "data" / "jobs"
            subprocess.run(["rm", "-rf", str(jobs)], check=True)  # time the work, not the job cache
            t = time.perf_counter()
            proc = subprocess.run(shlex.split(dvc[name]["cmd"]), cwd=ROOT, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t
            if proc.returncode:
                print(proc.stderr[-3000:])
                raise SystemExit(f"{name} failed at workers={workers}")
            rows.append((name, workers, wall, digest(outputs(dvc[name]))))
            print(f"{name:10s} workers={workers}  {wall:7.1f} s  outputs {rows[-1][3]}", flush=True)
        os.unlink(fh.name)
    print(f"\n{os.cpu_count()} cores; same outputs at 1 and 2 workers; speed-up = time(1) / time(2)\n")
    print("| stage | 1 worker s | 2 workers s | speed-up | outputs identical |")
    print("|---|---|---|---|---|")
    total = [0.0, 0.0]
    for name in names:
        (_, _, t1, d1), (_, _, t2, d2) = [r for r in rows if r[0] == name]
        total[0] += t1
        total[1] += t2
        print(f"| {name} | {t1:.1f} | {t2:.1f} | {t1 / t2:.2f}x | {'yes' if d1 == d2 else 'NO'} |")
    print(f"| all | {total[0]:.1f} | {total[1]:.1f} | {total[0] / total[1]:.2f}x | |")
    if any(r1[3] != r2[3] for r1 in rows for r2 in rows if r1[0] == r2[0]):
        raise SystemExit("outputs differ between worker counts")


if __name__ == "__main__":
    main()
