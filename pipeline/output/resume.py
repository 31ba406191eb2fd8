"""Where each shard stands when a run starts: done, partly done, or committed from an input that changed since.

A shard is done when its statistics record the input version it has now (pipeline/inputs/changes.py).
A committed shard whose input has another version is compared row by row with its output and
brought in line: its kept rows go to `_parts/<shard>/kept.parquet`, the added and edited rows are
translated like any missing rows, and the commit (pipeline/output/commit.py) merges both.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.documents import SENTENCES
from pipeline.inputs import (
    INPUT_VERSION,
    KEPT_FILE,
    Columns,
    RowChanges,
    Shard,
    compare_rows,
    kept_rows,
    output_in_line,
)
from pipeline.io import table_to_parquet_bytes, write_bytes_atomic
from pipeline.output.layout import DECODED_WITH, OutputLayout, part_files, read_shard_stats


@dataclass(frozen=True)
class ResumeContext:
    """What deciding a shard's state on resume needs: both filesystems, the output, the columns."""

    in_fs: object
    out_fs: object
    layout: OutputLayout
    columns: Columns
    added: tuple[pa.Field, ...]  # the job's own output columns (output_fields)
    unit: object = SENTENCES
    languages: tuple[str, ...] = ()  # per-row language columns: with the source, what a translation is made from

    @property
    def compared(self) -> list[str]:
        return [self.columns.source, *self.languages]


@dataclass(frozen=True)
class ShardState:
    """Where a shard stands when a run starts."""

    done: bool  # committed from the input as it is now: nothing to do
    ids: set = field(default_factory=set)  # rows finished, not committed: in part files or kept from the output
    changes: RowChanges | None = None  # a committed shard whose input changed since: its output is brought in line


def shard_state(ctx: ResumeContext, shard: Shard) -> ShardState:
    """Done (committed from this input version), or the rows already finished. A committed shard whose input
    has another version now is compared row by row with its output (`_bring_in_line`)."""
    fs, layout = ctx.out_fs, ctx.layout
    changes = None
    if fs.exists(layout.translation(shard.name)) and fs.exists(layout.stats(shard.name)):
        if shard.version is None or shard.version.same_as(read_shard_stats(fs, layout, shard).get("input")):
            return ShardState(True)
        changes = _bring_in_line(ctx, shard)
        if changes is None:
            return ShardState(True)
    return ShardState(False, _finished_ids(ctx, shard), changes)


def _bring_in_line(ctx: ResumeContext, shard: Shard) -> RowChanges | None:
    """A committed shard whose input version changed (or was never recorded): its output's rows against the
    input's, by id. None when the output still is the input (the file was rewritten or touched, or the
    output predates recorded versions): the statistics then record the new version and nothing is
    written again. Otherwise the kept rows go to the shard's kept file, beside its part files, and the
    shard is committed again: the committed output stays in place until the new one replaces it, so a
    run killed at any point loses nothing."""
    fs, layout = ctx.out_fs, ctx.layout
    with ctx.in_fs.open(shard.path, "rb") as fh:
        inputs = ctx.columns.rename(pq.read_table(fh))  # named as in the output (--rename-colliding-columns)
    with fs.open(layout.translation(shard.name), "rb") as fh:
        previous = pq.read_table(fh)
    stats = read_shard_stats(fs, layout, shard)
    parts_dir = layout.parts(shard.name)
    if output_in_line(inputs, previous) and not fs.exists(parts_dir):
        # (With part files left, a commit may have died between writing the translations and the stats.)
        write_bytes_atomic(fs, layout.stats(shard.name),
                           json.dumps({**stats, "input": shard.version.as_dict()}, sort_keys=True).encode())
        return None
    changes, kept, where = compare_rows(inputs, previous, ctx.columns.id, ctx.compared)
    rows = kept_rows(inputs, previous, kept, where, list(ctx.added))
    # The kept rows were decoded by an earlier run: in the precision its statistics name, when there is one.
    decoded = stats.get("decoded_with") or {}
    label = next(iter(decoded)) if len(decoded) == 1 else "unrecorded"
    rows = rows.replace_schema_metadata({DECODED_WITH: label.encode(), INPUT_VERSION: shard.version.key()})
    write_bytes_atomic(fs, f"{parts_dir}/{KEPT_FILE}", table_to_parquet_bytes(rows))
    return changes


def _finished_ids(ctx: ResumeContext, shard: Shard) -> set:
    """Ids of the rows in the shard's part files and kept file. A part made from another version of the input
    (or by a version of this job that did not record it) counts only if each of its rows is still what the
    input holds; otherwise it is removed and its rows are translated again."""
    fs, parts_dir, id_column = ctx.out_fs, ctx.layout.parts(shard.name), ctx.columns.id
    current = shard.version.key() if shard.version else None
    inputs: list[pa.Table] = []  # read once, at the first part that needs it
    tables, ids = [], set()
    for path in part_files(fs, parts_dir, kept=True):
        is_kept = posixpath.basename(path) == KEPT_FILE
        with fs.open(path, "rb") as fh:
            part = pq.ParquetFile(fh)
            same_input = current is None or (part.schema_arrow.metadata or {}).get(INPUT_VERSION) == current
            if not same_input:
                columns = None  # every column: each row is checked against the input
            else:
                columns = [id_column] if is_kept else ctx.unit.part_columns(id_column)
            rows = part.read(columns=columns)
        if not same_input:
            if not inputs:
                with ctx.in_fs.open(shard.path, "rb") as fh:
                    wanted = ctx.columns.in_input([id_column, *ctx.compared])
                    inputs.append(ctx.columns.rename(pq.read_table(fh, columns=wanted)))
            # (A kept file is written with the version it was compared with: another one is simply stale.)
            if is_kept or not ctx.unit.matches_input(rows, inputs[0], ctx.columns, ctx.languages).all():
                fs.rm_file(path)
                continue
        if is_kept:
            ids |= set(rows.column(id_column).to_pylist())
        else:
            tables.append(rows.select(ctx.unit.part_columns(id_column)))
    if tables:
        ids |= ctx.unit.done_ids(pa.concat_tables(tables, promote_options="default"), id_column)
    return ids
