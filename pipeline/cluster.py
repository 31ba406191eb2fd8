"""Connecting to Ray: the cluster RAY_ADDRESS names, else a private local instance sized to run."""

from __future__ import annotations

import logging
import os
import re
import warnings


def init_ray(min_logical_cpus: float) -> None:
    """Join the cluster RAY_ADDRESS names, or start a private local instance.

    `ray job submit` sets RAY_ADDRESS for the job; `RAY_ADDRESS=auto` joins the cluster that `ray start`
    runs on this machine. Without RAY_ADDRESS the job starts its own instance (Ray's address "local")
    and never joins another one: Ray's "auto" would find the local instance another job started the
    same way, sized for that job alone, and the two jobs' actors waited for its CPUs, both hung
    (issue 31). Two private instances share the machine's cores instead, and both finish.

    A local instance gets at least `min_logical_cpus` logical CPUs: Ray Data's
    list/read/map stages each need a CPU slot beside the actors or training
    workers, and on a 2-core laptop the physical count would leave a stage
    waiting forever. Logical CPUs are scheduling slots, not threads.
    """
    import ray

    if ray.is_initialized():
        return
    inline_actor_arguments()
    plain_logs_without_a_terminal()
    address = os.environ.get("RAY_ADDRESS", "")
    if address and address != "local":
        ray.init(address=address)
        return
    ray.init(address="local", num_cpus=int(max(os.cpu_count() or 1, min_logical_cpus + 0.999)))


# Ray inlines a task or actor argument up to this size in the task spec (its max_direct_call_object_size,
# 100 KiB by default); a larger one goes to the object store.
INLINE_ARGUMENT_BYTES = 100 * 1024


def inline_actor_arguments() -> None:
    """Ray Data's actor pools (Ray 2.60) pass each actor its UDF and DataContext as `ray.put` references, and
    Ray core logs an error for every such actor with restarts (core_worker.cc, ray#53727: a restart fails
    once the referenced object is evicted or lost). Our stages' constructors take URIs and small settings
    (pipeline/plan.py), so both values are a few KiB: passed by value they are inlined in the actor's
    creation task, which the GCS keeps for restarts, and a restarted actor never needs the object store.
    A value too large to inline keeps Ray Data's reference (and its warnings)."""
    from functools import cached_property

    import ray.cloudpickle
    from ray.data._internal.execution.operators.actor_pool_map_operator import ActorPoolMapOperator
    from ray.data._internal.execution.operators.map_operator import MapOperator

    if getattr(ActorPoolMapOperator, "_arguments_inlined", False):
        return

    def by_value(value, by_reference: cached_property):
        def get(self):
            cache = self.__dict__.setdefault("_inlined_arguments", {})
            if by_reference.attrname not in cache:
                with warnings.catch_warnings():  # DataContext's deprecated fields warn when pickled (Ray's own
                    warnings.simplefilter("ignore", DeprecationWarning)  # pickling of it says so once already)
                    small = len(ray.cloudpickle.dumps(value(self))) <= INLINE_ARGUMENT_BYTES
                cache[by_reference.attrname] = value(self) if small else by_reference.func(self)
            return cache[by_reference.attrname]
        return property(get)

    ActorPoolMapOperator._map_transformer_ref = by_value(lambda op: op._map_transformer,
                                                         MapOperator._map_transformer_ref)
    ActorPoolMapOperator._data_context_ref = by_value(lambda op: op.data_context, MapOperator._data_context_ref)
    ActorPoolMapOperator._arguments_inlined = True


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class PlainText(logging.Filter):
    """Strips terminal colour codes from log records (Ray colours its dashboard line with colorama)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "\x1b" in message:
            record.msg, record.args = ANSI_ESCAPE.sub("", message), ()
        return True


def plain_logs_without_a_terminal() -> None:
    """Log files get no colour codes: Ray's own log lines go through its "ray" logger's handlers, and the
    prefixes of its workers' lines are coloured unless RAY_COLOR_PREFIX=0 (set for the workers too)."""
    import sys

    if not sys.stdout.isatty():  # where the driver prints its workers' lines
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    if sys.stderr.isatty():  # where Ray's logger writes
        return
    for handler in logging.getLogger("ray").handlers:
        if not any(isinstance(f, PlainText) for f in handler.filters):
            handler.addFilter(PlainText())


def resource_note(waited: float, cpus: float, gpus: float, available: dict, total: dict) -> str:
    """The line a run prints while nothing has been written yet: what is free, against what one model actor
    needs. On a cluster other jobs use, the actors wait for what those hold."""
    free_cpus, free_gpus = available.get("CPU", 0.0), available.get("GPU", 0.0)
    need = f"{cpus:g} CPU" + (f" and {gpus:g} GPU" if gpus else "")
    free = f"{free_cpus:g} of {total.get('CPU', 0.0):g} CPUs" + (
        f" and {free_gpus:g} of {total.get('GPU', 0.0):g} GPUs" if gpus or total.get("GPU") else "")
    if free_cpus >= cpus and free_gpus >= gpus:
        return (f"nothing written yet after {waited:.0f} s: {free} free, a model actor needs {need} (the actors are "
                "starting or loading the model)")
    return (f"nothing written yet after {waited:.0f} s: waiting for resources: {free} free, a model actor needs "
            f"{need}; other jobs on this cluster may hold them (`ray status` shows the demand, `ray job list` "
            "the jobs); the run goes on when they are released")


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
