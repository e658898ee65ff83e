"""Thin DVC stages: read params and paths, call the sampleval library, write outputs.

Run from the repository root as ``python -m stages.<name>``.
"""
