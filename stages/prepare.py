"""prepare: load the data source, split, inject label noise, apply data/corrections.csv -> data/prepared/."""
from __future__ import annotations

from sampleval.data.prepare import prepare_dataset
from stages import paths
from stages._common import log, main, start


@main
def run(argv=None) -> None:
    params = start("prepare")
    manifest = prepare_dataset(params.data, params.noise, params.seed, paths.PREPARED, paths.CORRECTIONS)
    source, kind = params.data.source, params.noise.kind
    log.info("prepared %s: %s samples, %s flipped (noise %s); corrections %s", source, manifest["n_samples"], manifest["n_flipped"], kind,
             manifest["corrections"]["counts"])
    if source != "digits" and kind == "none":
        log.info("labels used as given (noise.kind auto = none for data.source %s); set noise.kind: pairwise or uniform "
                 "to inject noise, e.g. to measure detection on this data", source)


if __name__ == "__main__":
    run()
