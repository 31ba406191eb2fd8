"""The write stage: each batch's rows of a shard as one part file (pipeline/output/layout.py); and, on resume,
the stage that drops rows already in part files."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.columns import (
    INTERNAL,
    PATH,
    ROWS_DONE_COLUMN,
    SEG,
    SHARD_COLUMN,
    STATS_COLUMN,
)
from pipeline.documents import SENTENCES
from pipeline.inputs import (
    INPUT_VERSION,
)
from pipeline.io import (
    resolve,
    table_to_parquet_bytes,
    write_bytes_atomic,
)
from pipeline.output import DECODED_WITH, OutputLayout, RunStats


def make_drop_done(id_column: str, done: dict[str, set]):
    """Ray Data stage on resume: drop rows whose (shard path, id) is already in a part file."""

    def drop_done(table: pa.Table) -> pa.Table:
        paths = table.column(PATH).to_pylist()
        ids = table.column(id_column).to_pylist()
        keep = [i not in done.get(p, ()) for p, i in zip(paths, ids, strict=True)]
        return table.filter(pa.array(keep, pa.bool_()))

    return drop_done


def write_parts(table: pa.Table, output_uri: str, shard_names: dict[str, str], id_column: str,
                storage_options: dict, unit=SENTENCES, decoded_with: str = "",
                input_versions: dict[str, bytes] | None = None) -> pa.Table:
    """Ray Data stage: write each shard's rows of this batch as one part file; return, per part file,
    its run statistics, its shard and the input rows it finishes (`unit.rows_done`).

    Part names are a hash of the ids they hold: a retried task rewrites the same
    file instead of adding a duplicate. Each part records the precision its rows were decoded in
    (`decoded_with`): a shard finished by a later run may hold rows of two (--precision auto on
    other hardware), and the report counts them. Each also records the version of the input file its
    rows were read from (`input_versions`: input path -> InputVersion.key()), so that a later run can tell
    parts of another version of the input.
    """
    fs, root = resolve(output_uri, storage_options)
    layout = OutputLayout(root)
    written, names, done = [], [], []
    paths = table.column(PATH)
    for path in pc.unique(paths).to_pylist():
        rows = table.filter(pc.equal(paths, path))
        name = shard_names[path]
        # Named by the rows they hold (ids, and segment indices in document mode, where the segments
        # of one document can arrive in several batches): a retried task rewrites the same file.
        keys = [rows.column(id_column).to_pylist()] + ([rows.column(SEG).to_pylist()] if SEG in rows.column_names
                                                       else [])
        digest = hashlib.sha1("\n".join(map(str, zip(*keys, strict=True))).encode()).hexdigest()[:20]
        out = rows.drop_columns([c for c in (PATH, *INTERNAL) if c in rows.column_names])
        metadata = {**(out.schema.metadata or {}), DECODED_WITH: decoded_with.encode()}
        if input_versions and path in input_versions:
            metadata[INPUT_VERSION] = input_versions[path]
        out = out.replace_schema_metadata(metadata)
        write_bytes_atomic(fs, f"{layout.parts(name)}/part-{digest}.parquet", table_to_parquet_bytes(out))
        written.append(RunStats.of_rows(rows).to_json())
        names.append(name)
        done.append(str(unit.rows_done(rows)))
    return pa.table({STATS_COLUMN: pa.array(written, pa.string()), SHARD_COLUMN: pa.array(names, pa.string()),
                     ROWS_DONE_COLUMN: pa.array(done, pa.string())})
