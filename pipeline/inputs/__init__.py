"""The job's input: its Parquet shards and their checks (schemas, ids), text columns read as text, and how a
shard's input changed since its output was committed.
"""

from importlib import import_module

# name -> the module that defines it, imported on first use.
_HOMES = {
    "Columns": "pipeline.inputs.shards",
    "Shard": "pipeline.inputs.shards",
    "check_unique_ids": "pipeline.inputs.shards",
    "discover_shards": "pipeline.inputs.shards",
    "INPUT_VERSION": "pipeline.inputs.changes",
    "KEPT_FILE": "pipeline.inputs.changes",
    "RowChanges": "pipeline.inputs.changes",
    "compare_rows": "pipeline.inputs.changes",
    "input_version": "pipeline.inputs.changes",
    "kept_rows": "pipeline.inputs.changes",
    "output_in_line": "pipeline.inputs.changes",
    "same_values": "pipeline.inputs.changes",
    "decode_texts": "pipeline.inputs.text_columns",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
