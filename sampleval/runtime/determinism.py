"""How every computing process sets torch up (a stage, a pool worker, a Ray task): one home."""
from __future__ import annotations

import warnings


def configure_torch(cpu_threads: int) -> None:
    """Every process that computes (a stage, a worker, a Ray task): ``cpu_threads`` torch threads,
    fixed by params, so results do not depend on the machine's core count (a tiny model also
    trains faster on one thread than on two that spin-wait for each other); and, on CUDA,
    deterministic kernels. On the CPU at a fixed thread count torch's kernels already give the
    same bits every run, and the switch would cost each process seconds (it imports
    ``torch._inductor``): the pipeline's outputs were byte-identical without it.

    The kernels themselves are pinned earlier, when sampleval is imported
    (:mod:`sampleval.runtime.kernels`); a warning says so when torch came first and missed them."""
    import torch

    from sampleval.runtime.kernels import check_torch

    problem = check_torch()
    if problem:
        warnings.warn(problem, RuntimeWarning, stacklevel=2)
    torch.set_num_threads(cpu_threads)
    if torch.cuda.is_available():
        torch.use_deterministic_algorithms(True, warn_only=True)
