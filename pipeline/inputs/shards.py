"""The input's shards: Parquet files listed and checked from their footers (schemas, null ids), and ids
checked unique across the whole input before any decoding.

Rows are keyed by id, so ids must be unique across the input (checked here, and again when a shard is
committed: pipeline/output/commit.py).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.columns import (
    reserved_columns,
)
from pipeline.inputs.changes import (
    InputVersion,
    input_version,
)
from pipeline.inputs.schema import check_shard_schema, colliding_renames
from pipeline.io import (
    InputError,
    list_parquet_files,
    read_footers,
    resolve,
)


@dataclass(frozen=True)
class Shard:
    path: str  # on the input filesystem, as Ray's `path` column shows it
    name: str  # relative to the input root: the name of its output file and report group
    rows: int
    version: InputVersion | None = None  # what the listing said when the run planned (None: not known)


@dataclass(frozen=True)
class Columns:
    """The input's columns as the pipeline and the output name them."""

    id: str
    source: str
    reference: str | None  # None when the input has no reference column
    # Input columns named like a column the job writes, renamed (--rename-colliding-columns):
    # ((name in the input, name in the pipeline and the output), ...). id/source/reference are the new names.
    renamed: tuple[tuple[str, str], ...] = ()

    def rename(self, data: pa.Table | pa.Schema) -> pa.Table | pa.Schema:
        """An input table (or schema) with its colliding columns renamed."""
        names = dict(self.renamed)
        if not names:
            return data
        if isinstance(data, pa.Schema):
            return pa.schema([f.with_name(names.get(f.name, f.name)) for f in data], metadata=data.metadata)
        return data.rename_columns([names.get(n, n) for n in data.column_names])

    def in_input(self, names: list[str] | None) -> list[str] | None:
        """Column names as the input files have them (None: every column)."""
        inverse = {new: old for old, new in self.renamed}
        return None if names is None else [inverse.get(n, n) for n in names]


def discover_shards(uri: str, id_column: str, source_column: str, reference_column: str,
                    storage_options: dict | None = None, required: tuple[str, ...] = (),
                    rename_prefix: str = "") -> tuple[object, list[Shard], Columns, pa.Schema]:
    """List input Parquet files and check every one's schema from its footer (pipeline/inputs/schema.py);
    `required`: other columns every shard must have (language columns); `rename_prefix`: the new names'
    prefix for input columns named like a column the job writes (refused without one). Each shard's version
    (pipeline/inputs/changes.py) comes from the same listing."""
    # fsspec keeps one filesystem per process and options, with its listings: a listing cached by an earlier
    # run in this process would give stale versions (s3fs keeps cached directories over a new `find`).
    resolve(uri, storage_options)[0].invalidate_cache()
    try:
        fs, files = list_parquet_files(uri, storage_options)
    except FileNotFoundError as e:
        raise InputError(str(e)) from None
    _, root = resolve(uri, storage_options)
    # A folder's shards are named from the folder; a file's or a glob's from their common folder.
    base = root if fs.isdir(root) else posixpath.commonpath([posixpath.dirname(f) for f in files])

    metas = read_footers(fs, files)
    schema = metas[0].schema.to_arrow_schema()
    reserved = reserved_columns()
    has_ref, renamed = [], {}
    for path, meta in zip(files, metas, strict=True):
        where, shard_schema = fs.unstrip_protocol(path), meta.schema.to_arrow_schema()
        check_shard_schema(where, shard_schema, id_column, source_column, reference_column, required)
        renamed |= colliding_renames(where, shard_schema, reserved, rename_prefix, keep=required)
        has_ref.append(reference_column in shard_schema.names)
        _check_no_null_ids(fs, path, meta, id_column)
    if any(has_ref) and not all(has_ref):
        missing = files[has_ref.index(False)]
        raise InputError(f"{fs.unstrip_protocol(missing)}: missing column {reference_column!r} that other shards have")
    shards = [Shard(f, posixpath.relpath(f, base), m.num_rows, input_version(fs, f, m.num_rows))
              for f, m in zip(files, metas, strict=True)]
    reference = renamed.get(reference_column, reference_column) if all(has_ref) else None
    columns = Columns(renamed.get(id_column, id_column), renamed.get(source_column, source_column), reference,
                      tuple(sorted(renamed.items())))
    return fs, shards, columns, schema


def _check_no_null_ids(fs, path: str, meta, id_column: str) -> None:
    """From the footer's statistics; where a writer kept none, from the id column itself."""
    # The Parquet column of the id (leaf columns of nested fields come before it, so not its Arrow index).
    idx = next(i for i in range(len(meta.schema)) if meta.schema.column(i).path == id_column)
    stats = [meta.row_group(rg).column(idx).statistics for rg in range(meta.num_row_groups)]
    if all(s is not None and s.has_null_count for s in stats):
        nulls = sum(s.null_count for s in stats)
    else:
        with fs.open(path, "rb") as fh:
            nulls = pq.read_table(fh, columns=[id_column]).column(0).null_count
    if nulls:
        raise InputError(f"{fs.unstrip_protocol(path)}: column {id_column!r} has {nulls} null ids; "
                         "every row needs an id to be tracked and resumed")


def check_unique_ids(fs, shards: list[Shard], id_column: str) -> None:
    """Every id exactly once in the whole input, checked before any work; InputError naming the id and file(s).

    Output rows are matched to input rows by id, so a repeated id could never be committed.
    Ids are read one column at a time, in parallel; across shards only 64-bit hashes are kept
    (8 bytes a row), and a hash collision is confirmed on the ids themselves before it is reported.
    """
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    def ids_of(shard: Shard) -> np.ndarray:
        with fs.open(shard.path, "rb") as fh:
            column = pq.read_table(fh, columns=[id_column]).column(0)
        values = column.to_numpy(zero_copy_only=False)
        unique = pc.unique(column)
        if len(unique) < len(column):
            counts = pc.value_counts(column)
            dup = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"].as_py()
            raise InputError(f"{fs.unstrip_protocol(shard.path)}: id {dup!r} appears more than once in column "
                             f"{id_column!r}; ids must be unique")
        return values

    def hashes_of(shard: Shard) -> np.ndarray:
        return pd.util.hash_array(ids_of(shard), categorize=False)

    with ThreadPoolExecutor(16) as pool:
        hashes = list(pool.map(hashes_of, shards))
    owner = np.concatenate([np.full(len(h), i, dtype=np.int32) for i, h in enumerate(hashes)]) if hashes else []
    flat = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    order = np.argsort(flat, kind="stable")
    same = np.nonzero(flat[order][1:] == flat[order][:-1])[0]
    if not len(same):
        return
    # Confirm on the ids themselves (a 64-bit hash collision is possible, if unlikely).
    by_shard: dict[int, np.ndarray] = {}
    offsets = np.cumsum([0] + [len(h) for h in hashes])
    for k in same:
        a, b = order[k], order[k + 1]
        sa, sb = int(owner[a]), int(owner[b])
        for i in (sa, sb):
            if i not in by_shard:
                by_shard[i] = ids_of(shards[i])
        ida, idb = by_shard[sa][a - offsets[sa]], by_shard[sb][b - offsets[sb]]
        if ida == idb:
            ida = ida.item() if isinstance(ida, np.generic) else ida  # 2, not np.int64(2)
            raise InputError(f"id {ida!r} appears in both {fs.unstrip_protocol(shards[sa].path)} and "
                             f"{fs.unstrip_protocol(shards[sb].path)} (column {id_column!r}); ids must be "
                             "unique across the input")
