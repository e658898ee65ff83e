"""The stages pin OpenBLAS before numpy loads (sampleval.runtime.kernels), so that results do not depend on
the x86 CPU's vector width or core count (cleanlab.parquet differed between AVX2 and AVX-512 machines)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sampleval.runtime.kernels import cpu_flags as _cpu_flags

ROOT = Path(__file__).resolve().parents[1]
PROBE = (
    "import stages, numpy, json; from threadpoolctl import threadpool_info; "
    "print(json.dumps([(i['internal_api'], i.get('architecture'), i['num_threads']) "
    "for i in threadpool_info() if i['user_api'] == 'blas']))"
)


def _blas_after_import(extra_env: dict[str, str]) -> list:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    env.update(extra_env)
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_stages_pin_openblas_to_avx2_kernels_and_one_thread():
    blas = [b for b in _blas_after_import({}) if b[0] == "openblas"]
    if not blas:
        pytest.skip("numpy is not linked against OpenBLAS here")
    assert all(threads == 1 for _, _, threads in blas)
    if {"avx2", "fma"} <= _cpu_flags():
        assert {arch for _, arch, _ in blas} == {"Haswell"}


def test_a_users_openblas_setting_wins():
    blas = [b for b in _blas_after_import({"OPENBLAS_NUM_THREADS": "2"}) if b[0] == "openblas"]
    if not blas:
        pytest.skip("numpy is not linked against OpenBLAS here")
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: OpenBLAS caps its threads at 1")
    assert all(threads == 2 for _, _, threads in blas)
