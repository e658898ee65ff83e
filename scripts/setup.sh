#!/usr/bin/env bash
# Create .venv with the tested dependency versions (constraints.txt) and the library in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test,ray,peers]"
.venv/bin/python -c "import torch, torchvision, captum, dvc; print('torch', torch.__version__, '| torchvision', torchvision.__version__, '| captum', captum.__version__)"
