"""Input versions from filesystem listings, and row-by-row comparison of an input with a committed output."""

import time

import pyarrow as pa
import pyarrow.parquet as pq

from model.storage import resolve
from pipeline.inputs import discover_shards
from pipeline.inputs.changes import InputVersion, RowChanges, compare_rows, input_version, output_in_line, same_values


def test_local_versions_change_with_every_write_and_not_otherwise(tmp_path):
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"id": [1]}), path)
    fs, _ = resolve(str(tmp_path))
    first = input_version(fs, str(path), 1)
    assert first == input_version(fs, str(path), 1) and first.tag.startswith("mtime_ns=")
    stat = path.stat()
    time.sleep(0.01)
    pq.write_table(pa.table({"id": [2]}), path)  # same size, and the mtime put back as it was (cp -p, rsync -t)
    import os

    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert input_version(fs, str(path), 1) != first  # ctime cannot be put back


def test_s3_versions_come_from_the_listing_etag(s3_server, s3_bucket):
    fs = s3_server.filesystem()
    root = f"{s3_bucket[5:]}/in"
    with fs.open(f"{root}/a.parquet", "wb") as f:
        pq.write_table(pa.table({"id": ["x"], "source": ["one"]}), f)
    _, (shard,), _, _ = discover_shards(f"{s3_bucket}/in", "id", "source", "reference", s3_server.storage_options)
    assert shard.version.tag.startswith("ETag=") and shard.version.rows == 1
    with fs.open(f"{root}/a.parquet", "wb") as f:
        pq.write_table(pa.table({"id": ["x"], "source": ["uno"]}), f)  # same size, other bytes
    _, (again,), _, _ = discover_shards(f"{s3_bucket}/in", "id", "source", "reference", s3_server.storage_options)
    assert again.version.size == shard.version.size and again.version != shard.version


def test_a_version_without_a_tag_is_never_trusted():
    assert not InputVersion(10, "", 3).same_as(InputVersion(10, "", 3).as_dict())
    assert InputVersion(10, "ETag=x", 3).same_as({"size": 10, "tag": "ETag=x", "rows": 3})
    assert not InputVersion(10, "ETag=x", 3).same_as(None)  # a commit by a version that recorded none


def test_rows_are_compared_by_id_and_source_with_nulls_equal():
    inputs = pa.table({"id": [4, 1, 2, 5], "source": [None, "a", "B", "e"], "lang": ["de", "fr", "fr", "fr"]})
    previous = pa.table({"id": [1, 2, 3, 4], "source": ["a", "b", "c", None], "lang": ["fr", "fr", "fr", "de"]})
    changes, kept, where = compare_rows(inputs, previous, "id", ["source", "lang"])
    assert changes == RowChanges(added=1, edited=1, removed=1, kept=2)
    assert kept.tolist() == [True, True, False, False] and where.tolist() == [3, 0, 1, -1]
    # another language for the same text is another translation
    _, kept, _ = compare_rows(inputs, previous.set_column(2, "lang", pa.array(["fr"] * 4)), "id", ["source", "lang"])
    assert kept.tolist() == [False, True, False, False]
    # a column that decides translations, missing on one side: nothing can be kept
    assert compare_rows(inputs, previous.drop_columns(["lang"]), "id", ["source", "lang"])[0].kept == 0


def test_an_output_in_line_with_its_input_compares_every_input_column_including_lists():
    inputs = pa.table({"id": [1, 2], "refs": pa.array([["a", "b"], None], pa.list_(pa.string()))})
    previous = inputs.append_column("translation", pa.array(["x", "y"]))
    assert output_in_line(inputs, previous)
    changed = previous.set_column(1, "refs", pa.array([["a", "c"], None], pa.list_(pa.string())))
    assert not output_in_line(inputs, changed)
    assert not output_in_line(inputs, previous.take([1, 0]))  # another order is another output
    assert same_values(pa.array(["a", None]), pa.array(["a", None], pa.large_string())).tolist() == [True, True]
