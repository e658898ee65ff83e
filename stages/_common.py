"""What every stage does first: logging, params validation, determinism."""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager

from sampleval.runtime import kernels
from sampleval.config import Params, ParamsError, load
from stages.paths import MANIFEST, TRAIN_METRICS

log = logging.getLogger("sampleval")


def start(name: str, baseline: bool = False, torch: bool = True, announce: bool = False) -> Params:
    """Configure logging, validate params.yaml (failing before any work) and set torch up;
    return the typed params (:class:`sampleval.config.Params`) the stage passes on.

    ``baseline=True`` (stages that consume the trained baseline or scores derived from it):
    refuse a baseline whose validation metrics are at chance level, unless
    ``checks.allow_chance_level`` is true. ``torch=False``: a stage that computes nothing
    with torch (tables, tests, figures) skips importing it (seconds per stage).
    ``announce=True`` (check-params, the first stage of every run): log the machine class whose
    kernels are pinned (:mod:`sampleval.runtime.kernels`) once per run instead of once per stage."""
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s", stream=sys.stderr)
    params = load(os.environ.get("SAMPLEVAL_PARAMS", "params.yaml"))
    if baseline:
        require_usable_baseline(params)
    if announce:  # once per run: check-params, the first stage
        log.info("CPU kernels: %s (runs give the same bits on machines of this class; sampleval/runtime/kernels.py)", kernels.machine_class())
    if torch:
        import torch as _torch

        from sampleval.runtime.determinism import configure_torch

        configure_torch(params.train.cpu_threads)
        _torch.manual_seed(params.seed)
    return params


class BaselineError(RuntimeError):
    """The trained baseline cannot be used (chance-level validation metrics)."""


def require_usable_baseline(params: Params, train_metrics: str = TRAIN_METRICS, manifest: str = MANIFEST) -> None:
    """Fail in one line when the baseline recorded in ``train_metrics`` is at chance level
    on validation (see :mod:`sampleval.training.chance`), unless ``checks.allow_chance_level``."""
    import json

    from sampleval.training.chance import chance_level

    with open(train_metrics) as fh:
        val = json.load(fh)["val"]
    with open(manifest) as fh:
        info = json.load(fh)
    reason = chance_level(val, info["task"], info["class_counts"]["val"])
    if reason is None:
        return
    if params.checks.allow_chance_level:
        log.warning("the baseline is at chance level (%s); going on because checks.allow_chance_level is true", reason)
        return
    raise BaselineError(
        f"baseline model refused: {reason}; retrain it (e.g. lower train.lr, more train.epochs) "
        "or set checks.allow_chance_level: true to use it anyway"
    )


def _is_input_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a user's input problem (one line), not a bug (traceback).

    sampleval's DataError, TrainingError and ComputeError (a named failed job) are recognised by name, wherever they are
    defined, without importing their modules: a stage that never loads torch
    (check-params) stays fast on its error path too."""
    if isinstance(exc, (ParamsError, BaselineError, FileNotFoundError, KeyError, ValueError)):
        return True
    return any(c.__name__ in ("DataError", "TrainingError", "ComputeError") and c.__module__.startswith("sampleval.") for c in type(exc).__mro__)


@contextmanager
def one_line_errors():
    """Turn the library's input errors into one line on stderr and exit status 1
    (set SAMPLEVAL_DEBUG=1 to see the full traceback instead)."""
    try:
        yield
    except Exception as exc:
        if os.environ.get("SAMPLEVAL_DEBUG") or not _is_input_error(exc):
            raise
        message = exc.args[0] if exc.args else str(exc)
        if isinstance(exc, FileNotFoundError):
            # open() gives (errno, strerror) with .filename; pyarrow gives the bare path.
            # Ours carry a sentence naming the fix, which stays as it is.
            path = exc.filename or (message if isinstance(message, str) and " " not in message else None)
            if path is not None:
                message = f"{path} does not exist; run `dvc repro` to create it (or check the path)"
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)


def main(fn):
    """Decorator: run ``fn`` with one-line errors when the module is executed."""

    def wrapper(argv=None):
        with one_line_errors():
            return fn(argv)

    return wrapper
