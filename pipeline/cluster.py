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


def cluster_view():
    """What the cluster has now and can grow to (pipeline/settings.py ClusterView), from the running Ray.

    What it can grow to comes from the autoscaler's node types, read where Ray keeps them: the cluster
    config in the GCS (reported by autoscalers that report one, such as KubeRay's v2), else the config
    file the head's autoscaler (its monitor process, on this machine under `ray job submit`) was started
    with, else `~/ray_bootstrap_config.yaml`, where `ray up` puts it on the head. A node type must name
    its resources (`resources: {CPU: 4, GPU: 1}`) to be counted: left empty, the launcher fills them in
    from the instance type where this job cannot see them.
    """
    import ray

    from pipeline.settings import ClusterView

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    node_cpus = tuple(sorted(float(n["Resources"].get("CPU", 0)) for n in nodes if n["Resources"].get("CPU", 0) > 0))
    gpus = float(ray.cluster_resources().get("GPU", 0))
    types, source = autoscaler_node_types()
    max_gpus = sum(r.get("GPU", 0) * count for r, count in types)
    max_node_cpus = tuple(float(r["CPU"]) for r, count in types for _ in range(min(count, MAX_NODES_COUNTED))
                          if r.get("CPU"))
    return ClusterView(node_cpus=node_cpus or (0.0,), gpus=gpus, max_gpus=float(max_gpus),
                       max_node_cpus=max_node_cpus, source=source)


MAX_NODES_COUNTED = 256  # of one node type, when sizing the pool it could grow to ("unlimited" types)
BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"


def autoscaler_node_types() -> tuple[list[tuple[dict, int]], str]:
    """([(resources of one node, most nodes of that type)], where they were read), or ([], "")."""
    import ray._private.state

    try:
        config = ray._private.state.state.get_cluster_config()
    except Exception:  # noqa: BLE001  (older GCS, no such key: fall back to the files)
        config = None
    if config is not None and config.node_group_configs:
        return ([(dict(g.resources), g.max_count if g.max_count >= 0 else MAX_NODES_COUNTED)
                 for g in config.node_group_configs], "the cluster config in the GCS")
    for path in filter(None, (_monitor_config_path(), os.path.expanduser(BOOTSTRAP_CONFIG))):
        types = _types_in_launcher_config(path)
        if types:
            return types, path
    return [], ""


def _monitor_config_path() -> str | None:
    """The --autoscaling-config the autoscaler's monitor process on this machine was started with."""
    import glob

    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(cmdline, "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(a.endswith("monitor.py") for a in args):
            for a in args:
                if a.startswith("--autoscaling-config="):
                    return os.path.expanduser(a.split("=", 1)[1])
    return None


def _types_in_launcher_config(path: str) -> list[tuple[dict, int]]:
    """Node types of a cluster launcher config (YAML or JSON): the head once, each worker type up to its
    max_workers; [] when the file is missing or names no resources."""
    import yaml

    try:
        with open(path) as f:
            config = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return []
    types = (config or {}).get("available_node_types") or {}
    head = (config or {}).get("head_node_type")
    out = [(dict(t.get("resources") or {}), 1 if name == head else int(t.get("max_workers", 0)))
           for name, t in types.items() if isinstance(t, dict)]
    return [(r, n) for r, n in out if r and n > 0]
