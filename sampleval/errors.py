"""Errors whose message says how to fix the problem (stages print them as one line)."""
from __future__ import annotations


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, missing checkpoint, ...); the message says how to fix it."""
