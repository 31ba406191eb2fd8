"""pipeline.io's Parquet reads through Ray Data."""


import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.io import list_parquet_files, read_parquet_files


def _stages(ds) -> list:
    """The plan's operators, last first (Ray internals, for their resource arguments)."""
    ops, out = [ds._logical_plan.dag], []
    while ops:
        op = ops.pop()
        out.append(op)
        ops.extend(op.input_dependencies)
    return out


def test_files_are_read_in_blocks_of_the_asked_rows_by_fractional_cpu_tasks(local_ray, tmp_path):
    """No stage of the read asks a whole CPU (Ray Data's read_parquet lists files in a task of one CPU,
    which waited forever on clusters whose free CPUs were split across nodes)."""
    for i in range(3):
        pq.write_table(pa.table({"id": [f"{i}-{j}" for j in range(25)], "text": ["x"] * 25, "extra": list(range(25))}),
                       tmp_path / f"part-{i:05d}.parquet", row_group_size=7)
    fs, files = list_parquet_files(str(tmp_path))
    ds = read_parquet_files(files, fs, rows_per_block=10, num_cpus=0.25, columns=["id", "text"], path_column="path")
    cpus = [op.ray_remote_args.get("num_cpus") for op in _stages(ds) if getattr(op, "ray_remote_args", None)]
    assert cpus and all(c == 0.25 for c in cpus)
    # The blocks keep their size through the next stage: the read is not fused into it.
    ds = ds.map_batches(lambda t: t, batch_format="pyarrow", num_cpus=0.25)
    blocks = [b for b in ds.iter_batches(batch_size=None, batch_format="pyarrow")]
    assert max(b.num_rows for b in blocks) <= 10 and sum(b.num_rows for b in blocks) == 75
    rows = [r for b in blocks for r in b.to_pylist()]
    assert sorted(r["id"] for r in rows) == sorted(f"{i}-{j}" for i in range(3) for j in range(25))
    assert set(rows[0]) == {"id", "text", "path"} and all(r["path"] in files and r["id"][0] == r["path"][-9]
                                                          for r in rows)
