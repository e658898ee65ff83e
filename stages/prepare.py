"""prepare: load the data source, split, inject label noise, apply data/corrections.csv -> data/prepared/."""
from __future__ import annotations

from sampleval.prepare import prepare_dataset
from stages import paths
from stages._common import log, main, start


@main
def run(argv=None) -> None:
    params = start("prepare")
    manifest = prepare_dataset(params["data"], params["noise"], params["seed"], paths.PREPARED, paths.CORRECTIONS)
    log.info("prepared %s: %s samples, %s flipped; corrections %s", params["data"]["source"], manifest["n_samples"], manifest["n_flipped"],
             manifest["corrections"]["counts"])


if __name__ == "__main__":
    run()
