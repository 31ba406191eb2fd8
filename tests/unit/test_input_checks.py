"""Input schemas refused (or adapted) while planning, before anything is written (issue 31). No Ray."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pipeline.cluster
from jobs.cli import parse_config
from jobs.translate_corpus import TranslateConfig, inspect_inputs
from jobs.translate_corpus import main as translate
from pipeline.columns import PATH, ROW_STATS, output_fields
from pipeline.inputs import discover_shards
from pipeline.io import InputError
from pipeline.output import commit_shard, row_stats_array
from pipeline.scoring import MetricOptions
from pipeline.stages import write_parts


@pytest.fixture
def no_ray(monkeypatch):
    """The job must stop while planning: starting Ray here is a failure (and would disturb other Ray users)."""
    def refuse(*_, **__):
        raise AssertionError("the job went past planning and started Ray")

    monkeypatch.setattr(pipeline.cluster, "init_ray", refuse)


def write(tmp_path, rows, name="in/s1.parquet", **options):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows if isinstance(rows, pa.Table) else pa.table(rows), path, **options)
    return path


def plan_of(tmp_path, model, *flags):
    return inspect_inputs(parse_config(TranslateConfig, ["--input", str(tmp_path / "in"), "--model", model,
                                                         "--output", str(tmp_path / "out"), *flags]))


def test_every_column_the_job_adds_is_reserved():
    from pipeline.columns import reserved_columns

    assert {"translation", "status", "score", "nbest", "nbest_scores", "source_segments", "target_segments",
            PATH} <= reserved_columns()


@pytest.mark.parametrize("column", ["translation", "status", "score", "nbest", "nbest_scores", "source_segments",
                                    "target_segments", "path"])
def test_an_input_column_named_like_an_output_column_is_refused_while_planning(
        tiny_checkpoint, tmp_path, capsys, no_ray, column):
    write(tmp_path, {"id": ["a", "b"], "source": ["A dog.", "A cat."], column: ["x", "y"]})
    out = tmp_path / "out"
    code = translate(["--input", str(tmp_path / "in"), "--output", str(out), "--model", tiny_checkpoint])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert f"column {column!r}" in err[0] and "--rename-colliding-columns" in err[0]
    assert not out.exists()  # nothing written


def test_colliding_input_columns_are_renamed_when_asked_and_kept_in_the_output(tiny_checkpoint, tmp_path):
    """Re-translating an earlier system's output: its `translation` and `status` are kept as prev_*, and
    its `translation` can itself be the source (back-translation)."""
    path = write(tmp_path, {"id": ["a", "b"], "source": ["A dog.", "A cat."], "translation": ["Ein Hund.", None],
                            "status": ["ok", "empty"]})
    plan = plan_of(tmp_path, tiny_checkpoint, "--rename-colliding-columns", "prev_", "--source-column", "translation")
    columns = plan.columns
    assert dict(columns.renamed) == {"translation": "prev_translation", "status": "prev_status"}
    assert columns.source == "prev_translation" and columns.id == "id"
    # What the pipeline reads, writes and commits carries the new names.
    (shard,) = plan.shards
    from pipeline.io import read_file_blocks

    (block,) = read_file_blocks(plan.in_fs, shard.path, 100, path_column=PATH, rename=dict(columns.renamed))
    assert block.column_names == ["id", "source", "prev_translation", "prev_status", PATH]
    n = block.num_rows
    rows = (block.append_column("translation", pa.array(["Hund.", "Katze."]))
            .append_column("status", pa.array(["ok", "ok"]))
            .append_column(ROW_STATS, row_stats_array([3] * n, [4] * n, [5] * n, 0.01, 100.0)))
    write_parts(rows, str(tmp_path / "out"), {shard.path: shard.name}, "id", {})
    commit_shard(shard, str(path), str(tmp_path / "out"), columns, output_fields(1, False), (), MetricOptions(), {})
    result = pq.read_table(tmp_path / "out" / "translations" / "s1.parquet")
    assert result.column_names == ["id", "source", "prev_translation", "prev_status", "translation", "status"]
    assert result.column("prev_translation").to_pylist() == ["Ein Hund.", None]
    assert result.column("translation").to_pylist() == ["Hund.", "Katze."]


def test_a_renamed_column_may_not_land_on_another_column(tiny_checkpoint, tmp_path):
    write(tmp_path, {"id": ["a"], "source": ["A dog."], "translation": ["x"], "prev_translation": ["y"]})
    with pytest.raises(InputError, match="'prev_translation'.*choose another --rename-colliding-columns"):
        plan_of(tmp_path, tiny_checkpoint, "--rename-colliding-columns", "prev_")


@pytest.mark.parametrize("ids", [pa.array([["a"], ["b"]]), pa.array([{"k": 1}, {"k": 2}])], ids=["list", "struct"])
def test_list_and_struct_ids_are_refused_with_one_line(tiny_checkpoint, tmp_path, capsys, no_ray, ids):
    write(tmp_path, pa.table({"id": ids, "source": ["A dog.", "A cat."]}))
    with pytest.raises(InputError, match="column 'id' holds .*ids must be strings or integers"):
        discover_shards(str(tmp_path / "in"), "id", "source", "reference")
    code = translate(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--model", tiny_checkpoint])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "column 'id'" in err[0] and not (tmp_path / "out").exists()


def test_a_source_that_is_not_text_is_refused(tmp_path):
    write(tmp_path, {"id": ["a"], "source": [3]})
    with pytest.raises(InputError, match="column 'source' holds int64.*text"):
        discover_shards(str(tmp_path / "in"), "id", "source", "reference")


@pytest.mark.parametrize("source", [pa.binary(), pa.large_binary(), pa.large_string()])
def test_binary_and_large_string_sources_are_accepted(tmp_path, source):
    write(tmp_path, pa.table({"id": ["a"], "source": pa.array([b"A dog."]).cast(source)}))
    discover_shards(str(tmp_path / "in"), "id", "source", "reference")


def test_null_ids_are_found_when_the_footer_has_no_statistics(tmp_path):
    path = write(tmp_path, {"id": ["a", None, "c"], "source": ["x", "y", "z"]}, write_statistics=False)
    assert pq.read_metadata(path).row_group(0).column(0).statistics is None
    with pytest.raises(InputError, match="1 null ids"):
        discover_shards(str(tmp_path / "in"), "id", "source", "reference")


def test_language_columns_are_checked_in_every_shard(tiny_checkpoint, tmp_path):
    write(tmp_path, {"id": ["a"], "source": ["A dog."], "lang": ["de"]}, "in/a.parquet")
    write(tmp_path, {"id": ["b"], "source": ["A cat."]}, "in/b.parquet")
    with pytest.raises(InputError, match="b.parquet: missing column 'lang'"):
        plan_of(tmp_path, tiny_checkpoint, "--target-lang-column", "lang")


def test_null_ids_are_read_from_the_id_columns_own_statistics(tmp_path):
    """Leaf columns of a struct before the id shift its position in the footer: the statistics looked at
    were another column's."""
    write(tmp_path, pa.table({"meta": pa.array([{"a": 1, "b": 2}] * 2), "id": ["a", None], "source": ["x", "y"]}))
    with pytest.raises(InputError, match="1 null ids"):
        discover_shards(str(tmp_path / "in"), "id", "source", "reference")


def test_a_language_column_named_like_an_output_column_is_refused(tiny_checkpoint, tmp_path):
    write(tmp_path, {"id": ["a"], "source": ["A dog."], "status": ["de"]})
    with pytest.raises(InputError, match="language column 'status' is named like a column the job writes"):
        plan_of(tmp_path, tiny_checkpoint, "--target-lang-column", "status", "--rename-colliding-columns", "prev_")
