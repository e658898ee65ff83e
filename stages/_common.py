"""What every stage does first: logging, params validation, determinism."""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager

from sampleval.config import ParamsError, load_params
from stages import BLAS_PINNED

log = logging.getLogger("sampleval")

# Where each subset cell writes its record (dvc.yaml declares the same paths).
CELL_PATH = "metrics/subsets/{strategy}-{fraction}.json"


def start(name: str) -> dict:
    """Configure logging, validate params.yaml (failing before any work) and seed torch."""
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s", stream=sys.stderr)
    params = load_params(os.environ.get("SAMPLEVAL_PARAMS", "params.yaml"))
    if BLAS_PINNED:
        log.info("OpenBLAS pinned for machine-independent results: %s", " ".join(f"{k}={v}" for k, v in BLAS_PINNED.items()))
    import torch

    torch.use_deterministic_algorithms(True, warn_only=True)
    # Fixed per params: results do not depend on the machine's core count, and a tiny model
    # trains faster on one thread than on two that spin-wait for each other.
    torch.set_num_threads(params["train"]["cpu_threads"])
    torch.manual_seed(params["seed"])
    return params


@contextmanager
def one_line_errors():
    """Turn the library's input errors into one line on stderr and exit status 1
    (set SAMPLEVAL_DEBUG=1 to see the full traceback instead)."""
    from sampleval.data.prepared import DataError
    from sampleval.errors import TrainingError

    try:
        yield
    except (ParamsError, DataError, TrainingError, FileNotFoundError, KeyError, ValueError) as exc:
        if os.environ.get("SAMPLEVAL_DEBUG"):
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
