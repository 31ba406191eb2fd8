"""Connecting to Ray: an existing cluster when there is one, else a local instance sized to run."""

from __future__ import annotations

import os


def init_ray(min_logical_cpus: float) -> None:
    """Join the running cluster (RAY_ADDRESS, `ray job submit`, `ray start`), or start a local one.

    A local instance gets at least `min_logical_cpus` logical CPUs: Ray Data's
    list/read/map stages each need a CPU slot beside the actors or training
    workers, and on a 2-core laptop the physical count would leave a stage
    waiting forever. Logical CPUs are scheduling slots, not threads.
    """
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS", "auto")
    if address != "local":
        try:
            ray.init(address=address)
            return
        except ConnectionError:
            if "RAY_ADDRESS" in os.environ:
                raise
    # RAY_ADDRESS=local forces a fresh local instance even when another one runs on this machine.
    ray.init(address="local", num_cpus=int(max(os.cpu_count() or 1, min_logical_cpus + 0.999)))
