"""check-params: validate the whole params.yaml -> data/params_ok.json.

The other stages declare params per key, so a key no stage reads (a typo such as
``trian:``, or ``foo: 1``) would rerun nothing and go unnoticed. This stage depends on the
whole file, so any edit reruns it, and ``prepare`` depends on its output, so it runs
first. Its output is the same bytes whatever the params: an edit that passes does not
rerun ``prepare`` or anything downstream. It imports no torch (well under a second).
"""
from __future__ import annotations

from sampleval.io import write_json
from stages._common import main, start
from stages.paths import PARAMS_OK

OUT = PARAMS_OK


@main
def run(argv=None) -> None:
    start("check-params", torch=False, announce=True)  # validates params.yaml; logs the pinned kernels' machine class, once per run
    write_json(OUT, {"params_yaml": "valid"})


if __name__ == "__main__":
    run()
