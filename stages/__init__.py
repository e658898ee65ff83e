"""Thin DVC stages: read params and paths, call the sampleval library, write outputs.

Run from the repository root as ``python -m stages.<name>``.

Importing this package imports :mod:`sampleval` first, whose :mod:`sampleval.runtime.kernels` pins the
CPU kernels of torch, oneDNN, MKL, OpenBLAS and numpy to AVX2 before any of them loads: the
same params give the same bits on every x86-64 machine with AVX2 (with or without AVX-512).
"""
from __future__ import annotations

from sampleval.runtime import kernels

KERNELS_PINNED = kernels.CHANGED  # what the import set (logged by stages._common.start)
