"""Paths are paths: shard and folder names with glob characters are never read as patterns (issue 31). No Ray."""

import uuid

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.storage import resolve
from pipeline.columns import PATH, ROW_STATS, output_fields
from pipeline.inputs import discover_shards
from pipeline.io import list_parquet_files, table_to_parquet_bytes, write_bytes_atomic
from pipeline.output import OutputLayout, ResumeContext, commit_shard, row_stats_array, shard_state
from pipeline.scoring import MetricOptions
from pipeline.stages import write_parts


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path):
    """A folder on the local disk, or on fsspec's in-memory filesystem (which, like the object stores' fsspec
    filesystems, reads glob characters in the paths given to rm and mv as patterns)."""
    if request.param == "local":
        yield str(tmp_path)
        return
    name = f"/t-{uuid.uuid4().hex[:8]}"
    yield f"memory://{name}"
    fs = fsspec.filesystem("memory")
    if fs.exists(name):
        fs.rm(name, recursive=True)


def put(uri, table):
    fs, path = resolve(uri)
    write_bytes_atomic(fs, path, table_to_parquet_bytes(table))
    return path


def test_an_input_folder_with_brackets_is_a_folder_and_a_glob_is_still_a_glob(root):
    put(f"{root}/data[2024]/a.parquet", pa.table({"id": [1]}))
    put(f"{root}/data[2024]/b.parquet", pa.table({"id": [2]}))
    put(f"{root}/data2/c.parquet", pa.table({"id": [3]}))
    _, files = list_parquet_files(f"{root}/data[2024]")
    assert [f.rsplit("/", 1)[1] for f in files] == ["a.parquet", "b.parquet"]
    _, files = list_parquet_files(f"{root}/data[2024]/b.parquet")
    assert len(files) == 1 and files[0].endswith("data[2024]/b.parquet")
    _, files = list_parquet_files(f"{root}/data[0-9]/*.parquet")  # written as a glob, and no such path exists
    assert [f.rsplit("/", 1)[1] for f in files] == ["c.parquet"]


def test_a_shard_named_with_glob_characters_is_resumed_and_committed(root):
    shard_uri = f"{root}/in/corpus[v2].parquet"
    path = put(shard_uri, pa.table({"id": ["x2", "x1", "x3"], "source": ["b", "a", "c"]}))
    put(f"{root}/in/corpus2.parquet", pa.table({"id": ["y1"], "source": ["d"]}))
    fs, shards, columns, _ = discover_shards(f"{root}/in", "id", "source", "reference")
    shard = next(s for s in shards if s.name == "corpus[v2].parquet")
    other = next(s for s in shards if s.name == "corpus2.parquet")
    out = f"{root}/out"
    out_fs, out_root = resolve(out)
    layout = OutputLayout(out_root)
    ctx = ResumeContext(fs, out_fs, layout, columns, tuple(output_fields(1, False)))
    versions = {s.path: s.version.key() for s in shards}

    def state(s):
        found = shard_state(ctx, s)
        return found.done, found.ids

    table = pq.read_table(fs.open(path, "rb"))
    rows = (table.append_column(PATH, pa.array([path] * 3)).append_column("translation", pa.array(["B", "A", "C"]))
            .append_column("status", pa.array(["ok"] * 3))
            .append_column(ROW_STATS, row_stats_array([1] * 3, [1] * 3, [1] * 3, 0.01, 1.0)))
    write_parts(rows.slice(0, 2), out, {path: shard.name}, "id", {}, input_versions=versions)
    # The other shard's parts sit where the pattern "corpus[v2].parquet" would match ("corpus2.parquet").
    other_rows = pq.read_table(fs.open(other.path, "rb"))
    write_parts(other_rows.append_column(PATH, pa.array([other.path])).append_column("translation", pa.array(["D"]))
                .append_column("status", pa.array(["ok"])).append_column(ROW_STATS, row_stats_array([1], [1], [1], 0.0,
                                                                                                    1.0)),
                out, {other.path: other.name}, "id", {}, input_versions=versions)
    assert state(shard) == (False, {"x2", "x1"})  # its parts are found
    write_parts(rows.slice(2), out, {path: shard.name}, "id", {}, input_versions=versions)
    commit_shard(shard, shard_uri.rsplit("/", 1)[0], out, columns, output_fields(1, False), (), MetricOptions(), {})
    assert state(shard) == (True, set())  # committed, and seen as done
    assert not out_fs.exists(layout.parts(shard.name))
    assert state(other) == (False, {"y1"})  # the other shard's parts untouched
    with out_fs.open(layout.translation(shard.name), "rb") as fh:
        assert pq.read_table(fh).column("translation").to_pylist() == ["B", "A", "C"]


def test_remove_deletes_the_named_folder_only(root):
    from pipeline.io import remove

    fs, base = resolve(root)
    for name in ("corpus[v2].parquet", "corpus2.parquet"):
        fs.makedirs(f"{base}/p/{name}", exist_ok=True)
        fs.pipe_file(f"{base}/p/{name}/part-1.parquet", b"1")
    remove(fs, f"{base}/p/corpus[v2].parquet")
    assert [f.rsplit("/p/", 1)[1] for f in fs.find(f"{base}/p")] == ["corpus2.parquet/part-1.parquet"]
    remove(fs, f"{base}/p")  # a plain name: everything under it goes, whatever its children are called
    assert not fs.exists(f"{base}/p/corpus2.parquet/part-1.parquet") and not fs.find(f"{base}/p")
