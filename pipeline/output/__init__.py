"""The job's output: its layout, the lease and settings claim on it, resuming into it, committing shards, and
the run statistics that travel with the part files.
"""

from importlib import import_module

# name -> the module that defines it, imported on first use.
_HOMES = {
    "DECODED_WITH": "pipeline.output.layout",
    "OutputLayout": "pipeline.output.layout",
    "claim_output": "pipeline.output.layout",
    "read_shard_stats": "pipeline.output.layout",
    "FlagSpec": "pipeline.output.commit",
    "ShardProgress": "pipeline.output.commit",
    "commit_shard": "pipeline.output.commit",
    "HELD_EXIT_STATUS": "pipeline.output.lease",
    "Lease": "pipeline.output.lease",
    "LeaseConfig": "pipeline.output.lease",
    "LeaseHeld": "pipeline.output.lease",
    "clear_output": "pipeline.output.lease",
    "lease_store": "pipeline.output.lease",
    "Progress": "pipeline.output.progress",
    "progress_line": "pipeline.output.progress",
    "ResumeContext": "pipeline.output.resume",
    "shard_state": "pipeline.output.resume",
    "RunStats": "pipeline.output.run_stats",
    "row_stats_array": "pipeline.output.run_stats",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
