"""The default pipeline, `dvc repro --force` in a fresh clone, at compute.workers 1 and 2: wall
time per stage and in all, CPU time, and whether the outputs match the committed ones.

    python benchmarks/measure_pipeline.py [--workers 2 1] [--out benchmarks/RESULTS-pipeline.md]

Clones this repository (committed state) into a temporary folder and runs there with this
interpreter's environment (its `python` and `dvc`). The worker count reaches the stages
through SAMPLEVAL_PARAMS (a copy of params.yaml with `compute.workers` set), so params.yaml
and dvc.lock are those of the commit; `compute` is no stage's dependency. After each run,
`git diff --exit-code dvc.lock metrics/` says whether the run reproduced the committed
results (CI's check). Run it on a quiet machine: other processes on the 2 cores show up as
time. Writes the tables to --out, and prints them.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FAN_OUT = ("influence", "fidelity", "subsets", "detect", "refine")  # the stages whose work is executor jobs


def busy_seconds() -> float:
    """CPU time this machine has spent busy since boot, all cores (/proc/stat: every state but
    idle and iowait). Counts every process, the pool workers that getrusage misses included, so
    measure on a quiet machine."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_pipeline(clone: Path, workers: int) -> dict:
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["compute"]["workers"] = workers
    params_file = clone.parent / f"params-workers-{workers}.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "SAMPLEVAL_PARAMS": str(params_file),
           "DVC_NO_ANALYTICS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPATH", None)
    subprocess.run(["rm", "-rf", str(clone / "data" / "jobs")], check=True)  # time the work, not the job cache
    busy = busy_seconds()
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    starts: list[tuple[str, float]] = []
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "--force"], cwd=clone, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    for line in proc.stdout:
        found = re.search(r"Running stage '([^']+)'", line)
        if found:
            starts.append((found.group(1), time.perf_counter() - t0))
        tail = (tail + [line])[-40:]
    rc = proc.wait()
    wall = time.perf_counter() - t0
    cpu = busy_seconds() - busy
    if rc:
        raise SystemExit(f"dvc repro failed at workers={workers}:\n{''.join(tail)}")
    ends = [t for _, t in starts[1:]] + [wall]
    stages = {name: end - start for (name, start), end in zip(starts, ends)}
    same = subprocess.run(["git", "diff", "--quiet", "dvc.lock", "metrics/"], cwd=clone).returncode == 0
    return {"workers": workers, "wall": wall, "cpu": cpu,
            "stages": stages, "reproduced": same, "load_before": load_before, "load_after": os.getloadavg()[0]}


def render(runs: list[dict], commit: str, stamp: str) -> str:
    lines = [
        "# The default pipeline: `dvc repro --force` in a fresh clone",
        "",
        f"From `python benchmarks/measure_pipeline.py`, one run ({stamp}), commit `{commit}`, on {os.cpu_count()} cores "
        f"({platform.machine()}, Python {platform.python_version()}). Stage time = from its start to the next stage's start "
        "(its process, its jobs and DVC's bookkeeping). CPU = the machine's busy time during the run, all cores "
        "(/proc/stat; on a quiet machine, the run's); CPU / cores is the floor no scheduling can beat.",
        "",
        "| compute.workers | wall s | wall min | CPU s | CPU / cores s | reproduced the committed dvc.lock and metrics | load average before, after |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(f"| {r['workers']} | {r['wall']:.0f} | {r['wall'] / 60:.1f} | {r['cpu']:.0f} | {r['cpu'] / (os.cpu_count() or 1):.0f} | "
                     f"{'yes' if r['reproduced'] else 'NO'} | {r['load_before']:.2f}, {r['load_after']:.2f} |")
    if len(runs) >= 2:
        one = next((r for r in runs if r["workers"] == 1), None)
        if one is not None:
            for r in runs:
                if r is not one:
                    lines += ["", f"Whole pipeline: {r['workers']} workers are {one['wall'] / r['wall']:.2f}x faster than 1."]
    names = list(runs[0]["stages"])
    lines += ["", "| stage | " + " | ".join(f"{r['workers']} worker{'s' if r['workers'] > 1 else ''} s" for r in runs)
              + (" | speed-up |" if len(runs) == 2 else " |"),
              "|---" * (len(runs) + 1 + (len(runs) == 2)) + "|"]
    groups = {"fan-out stages together (" + ", ".join(FAN_OUT) + ")": [n for n in names if n in FAN_OUT],
              "the other stages together": [n for n in names if n not in FAN_OUT]}
    rows = [(name, [r["stages"].get(name, float("nan")) for r in runs]) for name in names]
    rows += [(f"**{label}**", [sum(r["stages"][n] for n in members) for r in runs]) for label, members in groups.items()]
    for name, times in rows:
        speed = ""
        if len(runs) == 2:
            slow, fast = times if runs[0]["workers"] < runs[1]["workers"] else times[::-1]
            speed = f" | {slow / fast:.2f}x"
        lines.append(f"| {name} | " + " | ".join(f"{t:.1f}" for t in times) + speed + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", nargs="+", type=int, default=[2, 1])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS-pipeline.md"))
    ap.add_argument("--render", action="store_true", help="only write --out again from the runs saved next to it (.json)")
    args = ap.parse_args()
    if args.render:
        runs_file = Path(args.out).with_suffix(".json")
        saved = json.loads(runs_file.read_text())
        stamp = saved.get("stamp") or datetime.fromtimestamp(runs_file.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        Path(args.out).write_text(render(saved["runs"], saved["commit"], stamp))
        return
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="measure-pipeline-") as tmp:
        clone = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        runs = []
        for workers in args.workers:
            runs.append(run_pipeline(clone, workers))
            print(f"workers={workers}: {runs[-1]['wall']:.0f} s wall, {runs[-1]['cpu']:.0f} s CPU, reproduced: {runs[-1]['reproduced']}", flush=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = render(runs, commit, stamp)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(json.dumps({"commit": commit, "stamp": stamp, "runs": runs}, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
