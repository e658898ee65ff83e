"""Experiments that prove an influence ranking by retraining: subsets, fidelity, refinement, corrections, and their statistics."""
