"""Thin DVC stages: read params and paths, call the sampleval library, write outputs.

Run from the repository root as ``python -m stages.<name>``.

Importing this package pins OpenBLAS (numpy's and scipy's BLAS, used by scikit-learn in
the ``cleanlab`` baseline and by the statistics) before numpy is loaded: OpenBLAS picks
its kernels by CPU, and the AVX-512 kernels round differently from the AVX2 ones, so the
same params gave different ``cleanlab.parquet`` contents on two x86 machines of the same
kind (AMD EPYC with and without AVX-512). Torch's results did not differ. A value the
user sets in the environment wins.
"""
from __future__ import annotations

import os
import platform


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def pin_blas() -> dict[str, str]:
    """Set ``OPENBLAS_CORETYPE=Haswell`` (the AVX2 kernels) on x86-64 CPUs that have AVX2
    and FMA, and ``OPENBLAS_NUM_THREADS=1`` (results independent of the core count, like
    ``train.cpu_threads`` for torch), unless already set. Returns what it set. Must run
    before numpy is imported to have any effect."""
    wanted = {"OPENBLAS_NUM_THREADS": "1"}
    if platform.machine().lower() in ("x86_64", "amd64") and {"avx2", "fma"} <= _cpu_flags():
        wanted["OPENBLAS_CORETYPE"] = "Haswell"
    applied = {k: v for k, v in wanted.items() if k not in os.environ}
    os.environ.update(applied)
    return applied


# What the import set (logged by stages._common.start).
BLAS_PINNED = pin_blas()
