"""pipeline.io's Parquet reads through Ray Data."""

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.io import footer_actors, list_parquet_files, read_parquet_dataset


@pytest.mark.parametrize(("files", "actors"), [(1, 1), (10, 1), (11, 2), (95, 10), (320, 32), (5000, 32)])
def test_one_footer_reader_per_footer_batch_up_to_rays_default(files, actors):
    assert footer_actors(files) == actors


def _planned_footer_actors(ds) -> int:
    """The footer pool size Ray planned for this read (Ray internals: the ListFiles op's indexer)."""
    ops = [ds._logical_plan.dag]
    while ops:
        op = ops.pop()
        if hasattr(op, "file_indexer"):
            return op.file_indexer._num_actors
        ops.extend(op.input_dependencies)
    raise AssertionError("no ListFiles operator in the plan")


def test_a_read_plans_footer_readers_for_its_files_and_leaves_the_environment(local_ray, tmp_path, monkeypatch):
    for i in range(12):
        pq.write_table(pa.table({"id": [f"{i}-{j}" for j in range(3)]}), tmp_path / f"part-{i:05d}.parquet")
    fs, files = list_parquet_files(str(tmp_path))
    monkeypatch.delenv("RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", raising=False)
    ds = read_parquet_dataset(files, fs)
    assert _planned_footer_actors(ds) == 2  # 12 files: two batches of footers, not Ray's 32 actors
    assert "RAY_DATA_PARQUET_FOOTER_NUM_ACTORS" not in os.environ
    assert sorted(row["id"] for row in ds.take_all()) == sorted(f"{i}-{j}" for i in range(12) for j in range(3))
    monkeypatch.setenv("RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", "5")  # the user's own setting wins
    assert _planned_footer_actors(read_parquet_dataset(files, fs)) == 5
    assert os.environ["RAY_DATA_PARQUET_FOOTER_NUM_ACTORS"] == "5"
