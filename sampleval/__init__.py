"""sampleval: which training samples help a model, which hurt it, proved by retraining.

The library knows nothing of DVC; the thin modules in ``stages/`` call it.
"""
from sampleval.runtime import kernels  # noqa: F401  first: pins the CPU kernels before numpy or torch load (same bits on any x86-64)

__version__ = "0.1.0"
