"""Storage access through fsspec: any URI (local path, file://, s3://, gs://, abfs://, memory://).

Endpoints and credentials come from the standard places (AWS_* variables,
instance roles, gcloud config) plus an optional `storage_options` dict for
fsspec. Nothing here logs them.
"""

from __future__ import annotations

import gzip
import io
import posixpath
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from model.storage import is_local, resolve  # noqa: F401  (resolve is re-exported: the pipeline's entry point)


def to_uri(fs, path: str) -> str:
    """The inverse of `resolve`: a path on `fs` as a URI with its protocol."""
    return fs.unstrip_protocol(path)


def absolute_uri(uri: str) -> str:
    """Local relative paths made absolute: Ray workers run in another working directory."""
    if not uri or "://" in uri:
        return uri
    import os

    return os.path.abspath(uri)


def join(uri: str, *parts: str) -> str:
    return posixpath.join(uri.rstrip("/"), *parts)


def pyarrow_filesystem(fs) -> pafs.FileSystem:
    """Wrap an fsspec filesystem for pyarrow and Ray (local stays native, for speed)."""
    if is_local(fs):
        return pafs.LocalFileSystem()
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs))


# Ray 2.60's Parquet reader reads footers on a pool of actors it starts for each read (and each
# epoch of a training dataset reads again): 32 by default, each a new Python process. It hands
# them 10 files per call, so more actors than ceil(files / 10) never get a file; on a 2-core
# machine starting the idle ones cost ~15 s per read. Ray reads the count from this variable
# when the read is planned, in the driver.
_FOOTER_ACTORS_VAR = "RAY_DATA_PARQUET_FOOTER_NUM_ACTORS"
_FILES_PER_FOOTER_CALL = 10  # ray.data's RAY_DATA_PARQUET_FOOTER_BATCH_SIZE default
_MAX_FOOTER_ACTORS = 32  # ray.data's default pool


def footer_actors(n_files: int) -> int:
    """Footer readers for a read of n_files: one per footer batch, at most Ray's own default."""
    return max(1, min(_MAX_FOOTER_ACTORS, -(-n_files // _FILES_PER_FOOTER_CALL)))


def read_parquet_dataset(files: list[str], fs, **kwargs):
    """ray.data.read_parquet of these files on an fsspec filesystem, with footer readers sized to them.

    A count the user set in RAY_DATA_PARQUET_FOOTER_NUM_ACTORS wins.
    """
    import os

    import ray.data

    if _FOOTER_ACTORS_VAR in os.environ:
        return ray.data.read_parquet(files, filesystem=pyarrow_filesystem(fs), **kwargs)
    os.environ[_FOOTER_ACTORS_VAR] = str(footer_actors(len(files)))
    try:
        return ray.data.read_parquet(files, filesystem=pyarrow_filesystem(fs), **kwargs)
    finally:
        del os.environ[_FOOTER_ACTORS_VAR]


def list_parquet_files(uri: str, storage_options: dict | None = None) -> tuple[object, list[str]]:
    """Parquet files named by a file, a directory/prefix (recursively) or a glob; sorted.

    Raises FileNotFoundError naming the URI when nothing matches.
    """
    fs, path = resolve(uri, storage_options)
    if any(c in path for c in "*?["):
        files = sorted(p for p in fs.glob(path) if fs.isfile(p))
    elif fs.isfile(path):
        files = [path]
    elif fs.isdir(path):
        files = sorted(p for p in fs.find(path) if p.endswith(".parquet") and not _hidden(path, p))
    else:
        raise FileNotFoundError(f"input not found: {uri}")
    if not files:
        raise FileNotFoundError(f"no Parquet files under {uri}")
    return fs, files


def _hidden(root: str, path: str) -> bool:
    """Files under a dot- or underscore-folder (staging, _temporary) are not part of a dataset."""
    rel = posixpath.relpath(path, root)
    return any(part.startswith((".", "_")) for part in rel.split("/"))


class InputError(ValueError):
    """Bad input found before any work: the message names the file (and the column)."""


def read_footers(fs, files: list[str]) -> list[pq.FileMetaData]:
    """Parquet footers (schema, row counts, statistics) of many files, read in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    def footer(path):
        try:
            with fs.open(path, "rb") as fh:
                return pq.read_metadata(fh)
        except Exception as e:  # pyarrow raises several types for a non-Parquet file
            raise InputError(f"{fs.unstrip_protocol(path)}: not a readable Parquet file ({e})") from None

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(footer, files))


def read_table(uri: str, columns: list[str] | None = None, storage_options: dict | None = None) -> pa.Table:
    """Read a small Parquet dataset (file, directory or glob) into one table."""
    fs, files = list_parquet_files(uri, storage_options)
    tables = []
    for f in files:
        with fs.open(f, "rb") as fh:
            tables.append(pq.read_table(fh, columns=columns))
    return pa.concat_tables(tables, promote_options="default")


def write_bytes_atomic(fs, path: str, data: bytes) -> None:
    """Write to a temporary name, then move into place: readers never see a partial file.

    On object stores the final key appears in one PUT/COPY; locally the move is a rename.
    """
    tmp = f"{posixpath.dirname(path)}/.tmp-{uuid.uuid4().hex}-{posixpath.basename(path)}"
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    fs.pipe_file(tmp, data)
    fs.mv(tmp, path)


def table_to_parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def read_text_lines(uri: str, storage_options: dict | None = None) -> Iterator[str]:
    """Lines of a text file (gzip if it ends in .gz), without line endings.

    Invalid UTF-8 raises ValueError naming the file and the 1-based line number.
    """
    fs, path = resolve(uri, storage_options)
    with fs.open(path, "rb") as raw:
        stream = gzip.open(raw) if path.endswith(".gz") else raw
        for lineno, line in enumerate(stream, start=1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{uri}: line {lineno} is not valid UTF-8 ({e.reason} at byte {e.start})") from None
            yield text.rstrip("\r\n")
