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
import warnings
from collections.abc import Iterator
from glob import has_magic

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from model.storage import is_local, resolve


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


def read_parquet_files(files: list[str], fs, rows_per_block: int, num_cpus: float, columns: list[str] | None = None,
                       path_column: str | None = None, rename: dict[str, str] | None = None):
    """A Ray dataset of these Parquet files' rows, in blocks of at most `rows_per_block` rows.

    One task per file, of `num_cpus` CPUs (a fraction is fine), streaming the file batch by batch
    (`read_file_blocks`). Ray Data's own read_parquet plans a file-listing stage
    that takes no resource arguments and asks one whole CPU, and its bin-packed blocks need a
    repartition (another whole-CPU stage) to reach actors in calls of a given size. On a cluster
    whose free CPUs are split across nodes in pieces below one (a CPU-less head, two 2-CPU workers,
    their model actors or training workers placed), those stages waited forever; and after a lost
    node a training run restarted from its checkpoint and then waited for them.
    """
    import ray.data

    def read(batch: dict) -> Iterator[pa.Table]:
        for path in batch["file"]:
            yield from read_file_blocks(fs, path, rows_per_block, columns, path_column, rename)

    # max_retries -1 is Ray Data's default for its tasks; said explicitly, it also keeps the reads in
    # tasks of their own: Ray fuses a map into the next one when their arguments agree, and the read would
    # run inside the next stage's one actor (tokenize), every file one after the other.
    args = {"num_cpus": num_cpus, "max_retries": -1}
    with warnings.catch_warnings():
        # Ray 2.60 deprecates passing remote args through **ray_remote_args but has no named parameter for
        # max_retries yet: the warning would be printed by every run, with nothing the operator can do.
        warnings.filterwarnings("ignore", message=".*ray_remote_args. is deprecated")
        ds = ray.data.from_items([{"file": f} for f in files]).map_batches(
            read, batch_size=1, batch_format="numpy", **args)
    return blocks_of_rows(ds, rows_per_block, args)


def read_file_blocks(fs, path: str, rows_per_block: int, columns: list[str] | None = None,
                     path_column: str | None = None, rename: dict[str, str] | None = None) -> Iterator[pa.Table]:
    """One Parquet file's rows in tables of at most `rows_per_block`; `path_column` adds the file's path,
    `rename` gives columns new names (input columns named like columns the translation job adds)."""
    with fs.open(path, "rb") as fh:
        for rows in pq.ParquetFile(fh).iter_batches(batch_size=rows_per_block, columns=columns):
            table = pa.Table.from_batches([rows])
            if rename:
                table = table.rename_columns([rename.get(n, n) for n in table.column_names])
            if path_column:
                table = table.append_column(path_column, pa.array([path] * table.num_rows, pa.string()))
            yield table


def blocks_of_rows(ds, rows: int, remote_args: dict):
    """`ds.repartition(target_num_rows_per_block=rows)` whose tasks take `remote_args` (CPUs).

    A task's yields are merged into blocks of up to 128 MiB, and an actor takes a whole block: one actor
    would get a whole shard while the others idle. Dataset.repartition takes no resource arguments, and
    its tasks ask one whole CPU; its logical operator takes them (Ray 2.60, pinned in pyproject.toml).
    With the same arguments as the stage before, Ray fuses it into that stage's tasks (MapBatches ->
    StreamingRepartition, not strict): it only shapes their output, with no task of its own.
    """
    from ray.data import Dataset
    from ray.data._internal.logical.interfaces import LogicalPlan
    from ray.data._internal.logical.operators import StreamingRepartition

    op = StreamingRepartition(target_num_rows_per_block=rows, input_dependencies=[ds._logical_plan.dag],
                              ray_remote_args=dict(remote_args))
    return Dataset._from_parent(ds, LogicalPlan(op, ds.context))


def list_parquet_files(uri: str, storage_options: dict | None = None) -> tuple[object, list[str]]:
    """Parquet files named by a file, a directory/prefix (recursively) or a glob; sorted.

    A path that exists is that path, whatever its characters (`corpus[v2].parquet`, `data[2024]/`):
    only a URI that names nothing and holds glob characters is a pattern. Raises FileNotFoundError
    naming the URI when nothing matches.
    """
    fs, path = resolve(uri, storage_options)
    if fs.isfile(path):
        files = [path]
    elif fs.isdir(path):
        files = sorted(p for p in fs.find(path) if p.endswith(".parquet") and not _hidden(path, p))
    elif has_magic(path):
        files = sorted(p for p in fs.glob(path) if fs.isfile(p))
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
    move(fs, tmp, path)


# fsspec reads glob characters in the paths given to rm, mv and copy as patterns (expand_path), except on
# the local disk: on object stores a shard named `corpus[v2].parquet` was never moved into place (no file
# matches the pattern) and removing its parts removed `corpus2.parquet`'s. These take names as names.


def move(fs, src: str, dst: str) -> None:
    """Move one file by its name (a rename on the local disk; a copy and a delete on object stores)."""
    if is_local(fs):
        fs.mv(src, dst)
    else:
        fs.cp_file(src, dst)
        fs.rm_file(src)


def remove(fs, path: str) -> None:
    """Delete a file or a folder and everything under it, by its name."""
    if is_local(fs) or not has_magic(path):
        fs.rm(path, recursive=True)  # what it finds under a plain name is taken as found, not as patterns
        return
    for file in fs.find(path):
        fs.rm_file(file)
    # Folders outlive their files on some filesystems (a hierarchical namespace, fsspec's memory filesystem).
    for folder in [*sorted(fs.find(path, withdirs=True), reverse=True), path]:
        if fs.isdir(folder):
            fs.rmdir(folder)


def files_in(fs, folder: str, prefix: str = "", suffix: str = "") -> list[str]:
    """The files directly in `folder` whose names start with `prefix` and end with `suffix`, sorted
    (what `fs.glob(f"{folder}/{prefix}*{suffix}")` would give if the folder's name held no glob characters)."""
    if not fs.isdir(folder):
        return []
    return sorted(p for p in fs.find(folder, maxdepth=1)
                  if posixpath.basename(p).startswith(prefix) and p.endswith(suffix))


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
