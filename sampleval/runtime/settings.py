"""params' ``compute`` section: where independent jobs run (:class:`sampleval.runtime.compute.Compute`
is built from it).

Standard library only: params validation imports it in every stage before any work.
"""
from __future__ import annotations

from dataclasses import dataclass

from sampleval.schema import BOOL, Spec, choice, integer, is_integral, number, setting

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class ComputeParams:
    backend: str = setting(choice(*BACKENDS), "local: a process pool on this machine; ray: Ray tasks")
    workers: int | str = setting(Spec(lambda x: x == "auto" or (is_integral(x) and 1 <= x <= 4096), "auto (the number of cores) or an integer >= 1"),
                                 "local pool size")
    address: str | None = setting(
        Spec(lambda x: x is None or (isinstance(x, str) and (x == "auto" or ":" in x)),
             "null (start a local Ray instance), auto (the `ray start --head` cluster here) or host:port"),
        "ray: the cluster to use")
    gpus_per_job: float = setting(number(0, 64), "ray: GPUs each job asks for")
    max_retries: int = setting(integer(0, 100), "ray: retries of a job whose worker died")
    job_cache: bool = setting(BOOL, "keep finished jobs in data/jobs/ and reuse them")
