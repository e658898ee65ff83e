"""DVC's experiment queue on this pipeline: two queued experiments, run by `dvc queue start --jobs 2`.

Builds a temporary git + DVC copy of the project with tiny params (as tests/test_e2e.py
does), commits a first run, queues two experiments with `dvc exp run --queue -S ...`, starts
the queue with two workers, waits, and prints `dvc exp show` and what each step returned.
Usage: python benchmarks/exp_queue_trial.py [workdir]
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_e2e import make_repo  # noqa: E402


def sh(repo: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"], "DVC_NO_ANALYTICS": "1"}
    env.pop("PYTHONPATH", None)
    t = time.time()
    proc = subprocess.run(list(args), cwd=repo, env=env, capture_output=True, text=True)
    print(f"$ {' '.join(args)}   -> exit {proc.returncode} in {time.time() - t:.0f} s")
    if check and proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:])
        raise SystemExit(1)
    return proc.stdout + proc.stderr


def main() -> None:
    base = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="expq-"))
    base.mkdir(parents=True, exist_ok=True)

    def tiny(p):
        p["data"]["limit"] = 400  # as tests/test_e2e.py
        p["compute"]["workers"] = 1  # two experiments at once, one core each

    repo = make_repo(base, tiny)
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "tiny")
    sh(repo, "dvc", "repro", "-q")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "baseline run")
    sh(repo, "dvc", "exp", "run", "--queue", "-S", "noise.rate=0.2", "-n", "rate-0.2")
    sh(repo, "dvc", "exp", "run", "--queue", "-S", "noise.rate=0.3", "-n", "rate-0.3")
    t = time.time()
    sh(repo, "dvc", "queue", "start", "--jobs", "2")
    while True:
        status = sh(repo, "dvc", "queue", "status", check=False)
        if "Running" not in status and "Queued" not in status:
            break
        time.sleep(10)
    print(status)
    print(f"queue drained in {time.time() - t:.0f} s")
    print(sh(repo, "dvc", "exp", "show", "--md", "--no-pager", "--only-changed", check=False)[-6000:])
    print(sh(repo, "dvc", "exp", "diff", "rate-0.2", "rate-0.3", "--md", check=False)[-3000:])


if __name__ == "__main__":
    main()
