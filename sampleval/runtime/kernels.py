"""Same bits on any x86-64 CPU: the one place that pins the kernels the numeric libraries
pick by instruction set. Applied when :mod:`sampleval` is imported, before numpy or torch.

torch, numpy and the BLAS libraries each choose their CPU kernels when they load, by what the
processor offers. AVX-512 kernels sum in other orders than AVX2 ones, so the same params gave
other checkpoints, influence columns and statistics on an AVX-512 machine than on an AVX2 one
(46 of the pipeline's output files differed). On every x86-64 CPU with AVX2 and FMA (Intel
since Haswell, AMD since Zen) this module pins all of them to their AVX2 kernels:

==========================  ===========  ==============================================
variable                    value        what it pins
==========================  ===========  ==============================================
``ATEN_CPU_CAPABILITY``     ``avx2``     torch's own vectorised kernels (ATen)
``ONEDNN_MAX_CPU_ISA``      ``AVX2``     oneDNN (torch's convolutions on the CPU)
``MKL_CBWR``                ``AVX2``     MKL (torch's matrix products and LAPACK): Intel's
                                         conditional numerical reproducibility
``OPENBLAS_CORETYPE``       ``Haswell``  OpenBLAS (numpy, scipy, scikit-learn)
``NPY_DISABLE_CPU_FEATURES``  AVX-512    numpy's own dispatched loops (exp, log, sums)
==========================  ===========  ==============================================

The pins win over values already in the environment: a stage run with, say,
``ATEN_CPU_CAPABILITY=avx512`` exported still computes with AVX2 kernels. To opt out (the
machine's fastest kernels, results comparable only by tolerance with other machines), set
``SAMPLEVAL_NATIVE_KERNELS=1``. Thread counts are a speed setting the user may change:
``OPENBLAS_NUM_THREADS`` defaults to 1 (like ``train.cpu_threads`` for torch) and a value in
the environment wins.

Other CPUs (x86-64 without AVX2, Arm) are left to their native kernels: their results are
reproducible on machines of their own class. :func:`machine_class` names the class whose
results a run's bits are comparable with (``.ci/compare_results.py`` uses it).
"""
from __future__ import annotations

import os
import platform
import sys

OPT_OUT = "SAMPLEVAL_NATIVE_KERNELS"

# numpy's dispatch targets above AVX2, by their names in numpy >= 2.3 (X86_V4 ...) and before.
_NUMPY_AVX512 = "X86_V4 AVX512_ICL AVX512_SPR AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL"

AVX2_PINS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
    "NPY_DISABLE_CPU_FEATURES": _NUMPY_AVX512,
}
THREAD_DEFAULTS = {"OPENBLAS_NUM_THREADS": "1"}

# torch.backends.cpu.get_cpu_capability() once ATEN_CPU_CAPABILITY=avx2 took effect
TORCH_CAPABILITY = "AVX2"


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def pinnable(flags: set[str] | None = None) -> bool:
    """Whether this CPU can run the pinned AVX2 kernels (x86-64 with AVX2 and FMA)."""
    return _x86_64() and {"avx2", "fma"} <= (cpu_flags() if flags is None else flags)


def opted_out() -> bool:
    return os.environ.get(OPT_OUT, "").strip().lower() not in ("", "0", "false", "no")


def pin(env: dict | None = None, flags: set[str] | None = None) -> dict[str, str]:
    """Set the pins in ``env`` (``os.environ``), overriding what is there, unless opted out or
    the CPU cannot run them; thread defaults only where unset. Returns what it changed."""
    env = os.environ if env is None else env
    wanted = {}
    if not opted_out() and pinnable(flags):
        wanted.update(AVX2_PINS)
    wanted.update({k: v for k, v in THREAD_DEFAULTS.items() if k not in env})
    changed = {k: v for k, v in wanted.items() if env.get(k) != v}
    env.update(changed)
    return changed


def pinned(env: dict | None = None) -> dict[str, str]:
    """The pins in force in ``env`` (``os.environ``): to hand to processes started elsewhere
    (Ray workers of a cluster that did not inherit this environment)."""
    env = os.environ if env is None else env
    return {k: env[k] for k in (*AVX2_PINS, *THREAD_DEFAULTS, OPT_OUT) if k in env}


def machine_class() -> str:
    """The class of machines whose runs give the same bits as this one: ``x86_64-avx2`` for
    every pinned x86-64 CPU, else the architecture and native capability."""
    if not opted_out() and pinnable():
        return "x86_64-avx2"
    machine = platform.machine().lower() or "unknown"
    if "torch" in sys.modules:
        return f"{machine}-native-{sys.modules['torch'].backends.cpu.get_cpu_capability().lower()}"
    return f"{machine}-native"


def check_torch() -> str | None:
    """A sentence when torch runs other kernels than the pins ask for (it was imported before
    sampleval, so the pins came too late), else None."""
    import torch

    if os.environ.get("ATEN_CPU_CAPABILITY") != AVX2_PINS["ATEN_CPU_CAPABILITY"]:
        return None
    have = torch.backends.cpu.get_cpu_capability()
    if have != TORCH_CAPABILITY:
        return (
            f"torch runs its {have} kernels, not the pinned {TORCH_CAPABILITY} ones: it was imported before sampleval; "
            "import sampleval first (or set the variables of sampleval.runtime.kernels.AVX2_PINS before starting Python)"
        )
    return None


CHANGED = pin()  # what importing sampleval set
