"""What a committed shard was made from, and how its output is brought in line with an input that changed.

A shard's commit records the version of the input file it was made from (`InputVersion`: its size, a
content tag the filesystem listing gives for free, and its row count) in `_stats/<shard>.json`. A re-run
that finds the same version skips the shard without reading it. A re-run that finds another version
(rows appended, a source edited, rows removed, or the file merely rewritten) compares the committed
output's rows with the input's by id (`compare_rows`): rows whose source text (and language columns)
are unchanged are *kept*, their translations carried over without decoding them again; *added* and
*edited* rows are translated; *removed* rows are dropped. The kept rows go into
`_parts/<shard>/kept.parquet` (`kept_rows`), beside the part files, and the shard's commit merges them as
it merges parts, so the old output stays in place until the new one replaces it.

Part files record the input version their rows were read from (`INPUT_VERSION` in their metadata): a
part from another version of the input is checked row by row before its rows count as done.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from model.storage import is_local

INPUT_VERSION = b"nmt_batch.input_version"  # part and kept files' metadata: the input version their rows came from
KEPT_FILE = "kept.parquet"  # in _parts/<shard>/: rows of the committed output that a changed input keeps

# Content tags of object stores' listings, most specific first: S3 and Azure give an ETag (the MD5 of a
# single-part upload, otherwise a value that still changes with every write), GCS an etag, an md5Hash and
# a generation. They come with the listing that found the files: no extra request, no data read.
TAG_KEYS = ("ETag", "etag", "md5Hash", "generation")
TIME_KEYS = ("LastModified", "last_modified", "updated", "mtime")


@dataclass(frozen=True)
class InputVersion:
    """An input file as the filesystem lists it. A rewritten file with the same rows gets another version
    too (a new mtime or, for multipart uploads, another ETag): that only costs a row-by-row comparison."""

    size: int
    tag: str  # "ETag=...", "mtime_ns=... ctime_ns=..." ...; "" where the store gives nothing to tell versions apart
    rows: int

    def as_dict(self) -> dict:
        return asdict(self)

    def key(self) -> bytes:
        return json.dumps(self.as_dict(), sort_keys=True).encode()

    def same_as(self, recorded: dict | None) -> bool:
        """Whether `recorded` (from a shard's statistics) is this version. Without a tag nothing can be
        trusted, and the rows are compared on every run."""
        return bool(self.tag) and recorded == self.as_dict()


def input_version(fs, path: str, rows: int) -> InputVersion:
    """The version of one input file: from its listing entry (s3fs and gcsfs answer `info` from the listing
    that found the file), or from stat on a local disk."""
    if is_local(fs):
        # mtime can be set by tools (cp -p, rsync -t, tar); ctime cannot and changes with every write.
        st = os.stat(path)
        return InputVersion(st.st_size, f"mtime_ns={st.st_mtime_ns} ctime_ns={st.st_ctime_ns}", rows)
    info = fs.info(path)
    size = int(info.get("size") or 0)
    for key in TAG_KEYS + TIME_KEYS:
        if info.get(key) not in (None, ""):
            return InputVersion(size, f"{key}={info[key]}", rows)
    return InputVersion(size, "", rows)


@dataclass(frozen=True)
class RowChanges:
    """How a shard's input differs from its committed output, in rows (documents in document mode)."""

    added: int = 0  # ids in the input only: translated
    edited: int = 0  # same id, another source text or language: translated again
    removed: int = 0  # ids in the output only: dropped
    kept: int = 0  # same id and source: the translation is carried over

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def __add__(self, other: RowChanges) -> RowChanges:
        return RowChanges(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values(), strict=True)))


def same_values(a: pa.ChunkedArray | pa.Array, b: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Row-wise equality where two nulls are equal (a null source is not an edit of a null source)."""
    if a.type != b.type:
        try:
            b = b.cast(a.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return np.zeros(len(a), dtype=bool)
    try:
        equal = pc.fill_null(pc.equal(a, b), False)
    except pa.ArrowNotImplementedError:  # lists, structs: compared as Python values
        return np.array([x == y for x, y in zip(a.to_pylist(), b.to_pylist(), strict=True)], dtype=bool)
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    return np.asarray(pc.or_(both_null, equal).to_numpy(zero_copy_only=False), dtype=bool)


def compare_rows(inputs: pa.Table, previous: pa.Table, id_column: str, compared: list[str]
                 ) -> tuple[RowChanges, np.ndarray, np.ndarray]:
    """(changes, kept: a mask over the input rows, where: each input row's row in `previous` or -1).

    `compared` are the columns that decide a translation (the source, and per-row language columns);
    a column missing on either side counts as changed for every row.
    """
    where = pc.index_in(inputs.column(id_column), value_set=previous.column(id_column))
    found = np.asarray(pc.is_valid(where).to_numpy(zero_copy_only=False), dtype=bool)
    where = np.asarray(pc.fill_null(where, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    kept = found.copy()
    take = pa.array(np.where(found, where, 0))
    for column in compared:
        if column not in inputs.column_names or column not in previous.column_names:
            kept[:] = False
            break
        if previous.num_rows:
            kept &= same_values(inputs.column(column), previous.column(column).take(take))
    matched = int(found.sum())
    changes = RowChanges(added=inputs.num_rows - matched, edited=matched - int(kept.sum()),
                         removed=previous.num_rows - matched, kept=int(kept.sum()))
    return changes, kept, where


def output_in_line(inputs: pa.Table, previous: pa.Table) -> bool:
    """Whether a committed output already is the input, row for row and column for column (its own
    columns aside): then only the recorded version is out of date (the file was rewritten or touched)."""
    if inputs.num_rows != previous.num_rows or not set(inputs.column_names) <= set(previous.column_names):
        return False
    for name in inputs.column_names:
        if not same_values(inputs.column(name), previous.column(name)).all():
            return False
    return True


def kept_rows(inputs: pa.Table, previous: pa.Table, kept: np.ndarray, where: np.ndarray,
              added: list[pa.Field]) -> pa.Table:
    """The kept rows as output rows: every input column as the input has it now (metadata and references
    may have changed), and the job's own columns (translation, status, ...) from the committed output."""
    rows = inputs.filter(pa.array(kept))
    take = pa.array(where[kept])
    for field in added:
        rows = rows.append_column(field, previous.column(field.name).take(take).cast(field.type))
    return rows
