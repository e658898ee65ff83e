"""sampleval: which training samples help a model, which hurt it, proved by retraining.

The library knows nothing of DVC; the thin modules in ``stages/`` call it.
"""
__version__ = "0.1.0"
