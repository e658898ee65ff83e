"""prepare: load the data source, split, inject label noise -> data/prepared/."""
from __future__ import annotations

from sampleval.prepare import prepare_dataset
from stages import paths
from stages._common import log, main, start


@main
def run(argv=None) -> None:
    params = start("prepare")
    manifest = prepare_dataset(params["data"], params["noise"], params["seed"], paths.PREPARED)
    log.info("prepared %s: %s samples, %s flipped", params["data"]["source"], manifest["n_samples"], manifest["n_flipped"])


if __name__ == "__main__":
    run()
