"""Run as a script (tests/test_kernels.py): import sampleval the way a stage does, train a tiny
model for two epochs with checkpoints and print the sha256 of every file written plus the
kernels torch ran. The caller sets the environment (forced capabilities, opt-out)."""
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import stages  # noqa: F401  what every stage imports first (it pins the kernels)
import torch  # noqa: E402

from sampleval.data.digits import load_digits_source  # noqa: E402
from sampleval.runtime.determinism import configure_torch  # noqa: E402
from sampleval.training.loop import TrainConfig, train  # noqa: E402

configure_torch(1)
images, table, _ = load_digits_source()
y = table["label"].to_numpy()
cfg = TrainConfig(epochs=2, batch_size=64)  # 2 epochs: the second starts from the first's optimiser state
with tempfile.TemporaryDirectory() as tmp:
    train(images[:256], y[:256], images[256:320], y[256:320], "multiclass", 10, cfg, seed=0, ckpt_dir=tmp)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(tmp).iterdir())}
json.dump({"capability": torch.backends.cpu.get_cpu_capability(), "files": digests}, sys.stdout)
