"""Same bits on any x86-64 CPU: the kernel pins of sampleval.runtime.kernels win over the environment,
reach every process that computes, and can be turned off."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sampleval.runtime import kernels

ROOT = Path(__file__).resolve().parents[1]
PINNABLE = kernels.pinnable()
# a capability this machine can run that is not the pinned AVX2: its native AVX-512 where it has
# it (the case that broke reproducibility), else ATen's scalar default
OTHER = "avx512" if "avx512f" in kernels.cpu_flags() else "default"
FORCED = {"ATEN_CPU_CAPABILITY": OTHER, "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE",
          "OPENBLAS_CORETYPE": "Prescott", "NPY_DISABLE_CPU_FEATURES": ""}


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in kernels.AVX2_PINS and k != kernels.OPT_OUT}
    env.update(extra)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _probe(env: dict) -> dict:
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "kernels_probe.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_pin_overrides_the_environment_and_fills_thread_defaults():
    env = {"ATEN_CPU_CAPABILITY": "avx512", "OPENBLAS_NUM_THREADS": "4"}
    changed = kernels.pin(env, flags={"avx2", "fma", "avx512f"})
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and changed["ATEN_CPU_CAPABILITY"] == "avx2"
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2" and env["MKL_CBWR"] == "AVX2" and env["OPENBLAS_CORETYPE"] == "Haswell"
    assert "X86_V4" in env["NPY_DISABLE_CPU_FEATURES"].split()
    assert env["OPENBLAS_NUM_THREADS"] == "4"  # a thread count is the user's speed setting
    assert kernels.pin(env, flags={"avx2", "fma"}) == {}  # idempotent


def test_no_pins_where_the_cpu_cannot_run_them():
    env: dict = {}
    kernels.pin(env, flags={"sse4_2", "avx"})  # x86-64 without AVX2
    assert not set(kernels.AVX2_PINS) & set(env)
    assert env == {"OPENBLAS_NUM_THREADS": "1"}


@pytest.mark.skipif(not PINNABLE, reason="no AVX2+FMA x86-64 CPU: nothing is pinned here")
def test_a_tiny_training_gives_the_pinned_bytes_whatever_the_environment_forces():
    """The issue's check on one machine: force another ATen capability (and oneDNN, MKL, OpenBLAS,
    numpy settings) in the environment; the stage's pins win, so the checkpoints are the pinned
    run's bytes. With the opt-out the forced kernels run, and the bytes differ (the test can see
    a difference)."""
    pinned = _probe(_env())
    forced = _probe(_env(**FORCED))
    assert pinned["capability"] == forced["capability"] == "AVX2"
    assert forced["files"] == pinned["files"]
    assert len(pinned["files"]) == 2  # epoch-001.pt, epoch-002.pt: weights, optimiser, RNG, history

    native = _probe(_env(**FORCED, SAMPLEVAL_NATIVE_KERNELS="1"))
    assert native["capability"] == OTHER.upper()
    if native["files"] == pinned["files"]:
        pytest.skip(f"ATen {OTHER} and AVX2 kernels give the same bits for this tiny model here")
    assert native["files"] != pinned["files"]


def test_machine_class_names_the_pinned_class():
    if PINNABLE and not kernels.opted_out():
        assert kernels.machine_class() == "x86_64-avx2"
    else:
        assert "native" in kernels.machine_class()


def test_pool_workers_and_ray_get_the_pins():
    from sampleval.runtime.compute import Compute, run_jobs

    out = run_jobs(_worker_env, [{"i": 0}, {"i": 1}], Compute(backend="local", workers=2), desc="env")
    for env in out:
        for k, v in kernels.pinned().items():
            assert env.get(k) == v
        if PINNABLE:
            assert env["capability"] == "AVX2"


def _worker_env(shared, job):
    import torch

    return {**{k: os.environ.get(k) for k in kernels.pinned()}, "capability": torch.backends.cpu.get_cpu_capability()}
