"""Input checks, part files and per-shard commits, without Ray."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.storage import resolve
from pipeline.columns import PATH, ROW_STATS, ROWS_DONE_COLUMN, SHARD_COLUMN, STATS_COLUMN, output_fields
from pipeline.inputs import Columns, check_unique_ids, discover_shards
from pipeline.io import InputError
from pipeline.output import OutputLayout, RunStats, ShardProgress, commit_shard, row_stats_array
from pipeline.output.resume import ResumeContext, ShardState, shard_state
from pipeline.scoring import MetricOptions, make_metrics, sentence_stats
from pipeline.stages import make_drop_done, write_parts


def make_input(tmp_path, rows, name="in/s1.parquet"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows), path)
    return path


def translated(table, path):
    n = table.num_rows
    return (table.append_column(PATH, pa.array([str(path)] * n))
            .append_column("translation", pa.array([s.upper() for s in table.column("source").to_pylist()]))
            .append_column("status", pa.array(["ok"] * n))
            .append_column(ROW_STATS, row_stats_array([3] * n, [4] * n, [5] * n, 0.01, 100.0)))


ROWS = {"id": ["x3", "x1", "x2", "x4"], "source": ["c", "a", "b", "d"], "reference": ["C", "A", "x", "D"]}


def context(tmp_path, columns, unit=None, **extra) -> ResumeContext:
    """What shard_state needs, for local input under tmp_path/in and output in tmp_path/out."""
    in_fs, _ = resolve(str(tmp_path))
    out_fs, root = resolve(str(tmp_path / "out"))
    more = {"unit": unit} if unit is not None else {}
    return ResumeContext(in_fs, out_fs, OutputLayout(root), columns, tuple(output_fields(1, False)), **more, **extra)


def test_parts_then_commit_restores_input_order_and_scores(tmp_path):
    path = make_input(tmp_path, ROWS)
    _, shards, columns, _ = discover_shards(str(tmp_path / "in"), "id", "source", "reference")
    (shard,) = shards
    assert shard.name == "s1.parquet" and shard.rows == 4 and columns.reference == "reference"
    out = str(tmp_path / "out")
    table = translated(pa.table(ROWS), path)
    # two batches arrive out of order; the second batch is also retried (same part written twice)
    for batch in (table.slice(2), table.slice(0, 2), table.slice(0, 2)):
        stats = write_parts(batch, out, {str(path): shard.name}, "id", {})
        (written,) = [RunStats.from_json(t) for t in stats.column(STATS_COLUMN).to_pylist()]
        assert written.padded_source_tokens == 5 * batch.num_rows and written.status == {"ok": batch.num_rows}
    assert len(list((tmp_path / "out" / "_parts" / "s1.parquet").iterdir())) == 2
    stats = commit_shard(shard, str(tmp_path / "in"), out, columns, output_fields(1, False), ("bleu", "chrf"),
                         MetricOptions(), {})
    result = pq.read_table(tmp_path / "out" / "translations" / "s1.parquet")
    assert result.column("id").to_pylist() == ROWS["id"]
    assert result.column_names == ["id", "source", "reference", "translation", "status"]
    assert stats["sentences"] == 4 and stats["status"] == {"ok": 4}
    bleu = make_metrics()["bleu"]
    expected = sentence_stats(bleu, ["C", "A", "B", "D"], [["C", "A", "x", "D"]]).sum(0).tolist()
    assert stats["metrics"]["bleu"] == expected
    assert not (tmp_path / "out" / "_parts" / "s1.parquet").exists()
    assert shard_state(context(tmp_path, columns), shard) == ShardState(True)


def test_missing_rows_keep_the_parts_and_name_the_shard(tmp_path):
    path = make_input(tmp_path, ROWS)
    _, (shard,), columns, _ = discover_shards(str(path), "id", "source", "reference")
    out = str(tmp_path / "out")
    write_parts(translated(pa.table(ROWS), path).slice(0, 3), out, {str(path): shard.name}, "id", {})
    assert shard_state(context(tmp_path, columns), shard) == ShardState(False, {"x3", "x1", "x2"})
    with pytest.raises(RuntimeError, match="s1.parquet: 1 of 4 rows missing"):
        commit_shard(shard, str(path), out, columns, output_fields(1, False), (), MetricOptions(), {})
    assert (tmp_path / "out" / "_parts" / "s1.parquet").exists()


def test_drop_done_filters_by_shard_and_id(tmp_path):
    table = pa.table({PATH: ["p1", "p1", "p2"], "id": [1, 2, 1]})
    assert make_drop_done("id", {"p1": {1}})(table).to_pylist() == [{PATH: "p1", "id": 2}, {PATH: "p2", "id": 1}]


def test_zero_row_shard_commits_an_empty_file(tmp_path):
    path = make_input(tmp_path, {"id": pa.array([], pa.string()), "source": pa.array([], pa.string())})
    _, (shard,), columns, _ = discover_shards(str(path), "id", "source", "reference")
    assert columns.reference is None
    stats = commit_shard(shard, str(path), str(tmp_path / "out"), columns, output_fields(1, False), ("bleu",),
                         MetricOptions(), {})
    result = pq.read_table(tmp_path / "out" / "translations" / "s1.parquet")
    assert result.num_rows == 0 and result.column_names == ["id", "source", "translation", "status"]
    assert stats == json.loads((tmp_path / "out" / "_stats" / "s1.parquet.json").read_text())


@pytest.mark.parametrize("rows, message", [
    ({"id": ["a"], "text": ["x"]}, "missing column 'source'"),
    ({"id": ["a", None], "source": ["x", "y"]}, "null ids"),
])
def test_bad_inputs_are_named_before_any_work(tmp_path, rows, message):
    path = make_input(tmp_path, rows)
    with pytest.raises(InputError, match=message) as e:
        discover_shards(str(tmp_path / "in"), "id", "source", "reference")
    assert str(path) in str(e.value)


def test_non_parquet_and_missing_inputs(tmp_path):
    (tmp_path / "junk.parquet").write_text("not parquet at all")
    with pytest.raises(InputError, match="junk.parquet: not a readable Parquet file"):
        discover_shards(str(tmp_path / "junk.parquet"), "id", "source", "reference")
    with pytest.raises(InputError, match="input not found"):
        discover_shards(str(tmp_path / "nope"), "id", "source", "reference")


def test_reference_in_some_shards_only_is_an_error(tmp_path):
    make_input(tmp_path, {"id": ["a"], "source": ["x"], "reference": ["y"]}, "in/a.parquet")
    make_input(tmp_path, {"id": ["b"], "source": ["x"]}, "in/b.parquet")
    with pytest.raises(InputError, match="b.parquet: missing column 'reference'"):
        discover_shards(str(tmp_path / "in"), "id", "source", "reference")


def test_columns_dataclass_is_hashable():
    assert Columns("id", "source", None) == Columns("id", "source", None)


def test_run_stats_merge():
    a = RunStats(sentences=2, source_tokens=10, target_tokens=12, padded_source_tokens=14, actor_decode_seconds=0.5,
                 actor_peak_rss_mb=300.0, status={"ok": 2})
    b = RunStats(sentences=1, source_tokens=3, target_tokens=4, padded_source_tokens=3, actor_decode_seconds=0.25,
                 actor_peak_rss_mb=200.0, status={"ok": 0, "split": 1})
    merged = a.merge(RunStats.from_json(b.to_json()))
    assert merged == RunStats(3, 13, 16, 17, 0.75, 300.0, {"ok": 2, "split": 1})
    summary = merged.summary(seconds=1.5)
    assert summary["padding_efficiency"] == round(13 / 17, 4) and summary["sentences_per_actor_second"] == 4.0


@pytest.mark.parametrize("ids", [["a", "b", "a"], [1, 2, 2]])
def test_a_repeated_id_within_a_shard_is_named_before_any_work(tmp_path, ids):
    path = make_input(tmp_path, {"id": ids, "source": ["x"] * 3})
    fs, shards, _, _ = discover_shards(str(path), "id", "source", "reference")
    with pytest.raises(InputError, match=f"id {ids[-1]!r} appears more than once") as e:
        check_unique_ids(fs, shards, "id")
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_an_id_in_two_shards_is_named_with_both_files(tmp_path):
    make_input(tmp_path, {"id": ["a", "b"], "source": ["x", "y"]}, "in/one.parquet")
    make_input(tmp_path, {"id": ["c", "d"], "source": ["x", "y"]}, "in/two.parquet")
    make_input(tmp_path, {"id": ["e", "b"], "source": ["x", "y"]}, "in/three.parquet")
    fs, shards, _, _ = discover_shards(str(tmp_path / "in"), "id", "source", "reference")
    with pytest.raises(InputError, match="id 'b' appears in both .*one.parquet and .*three.parquet"):
        check_unique_ids(fs, shards, "id")
    make_input(tmp_path, {"id": ["e", "f"], "source": ["x", "y"]}, "in/three.parquet")
    check_unique_ids(fs, shards, "id")  # unique again: no error


def test_part_names_tell_segments_of_one_document_apart(tmp_path):
    """Document mode: two batches holding different segments of the same document are two part files."""
    from pipeline.columns import NSEG, SEG

    path = make_input(tmp_path, {"id": ["d"], "source": ["A. B. C. D."]})
    rows = translated(pa.table({"id": ["d"] * 4, "source": list("ABCD")}), path)
    rows = rows.append_column(SEG, pa.array([0, 1, 2, 3], pa.int32())).append_column(NSEG, pa.array([4] * 4,
                                                                                                   pa.int32()))
    for batch in (rows.slice(0, 2), rows.slice(2)):
        write_parts(batch, str(tmp_path / "out"), {str(path): "s1.parquet"}, "id", {})
    assert len(list((tmp_path / "out" / "_parts" / "s1.parquet").iterdir())) == 2


def test_write_parts_says_which_shard_and_how_many_input_rows_each_part_finishes(tmp_path):
    a = make_input(tmp_path, {"id": ["a1", "a2", "a3"], "source": ["x", "y", "z"]}, "in/a.parquet")
    b = make_input(tmp_path, {"id": ["b1"], "source": ["w"]}, "in/b.parquet")
    batch = pa.concat_tables([translated(pa.table({"id": ["a1", "a3"], "source": ["x", "z"]}), a),
                              translated(pa.table({"id": ["b1"], "source": ["w"]}), b)])
    out = write_parts(batch, str(tmp_path / "out"), {str(a): "a.parquet", str(b): "b.parquet"}, "id", {})
    assert dict(zip(out.column(SHARD_COLUMN).to_pylist(), out.column(ROWS_DONE_COLUMN).to_pylist(),
                    strict=True)) == {"a.parquet": "2", "b.parquet": "1"}
    progress = ShardProgress({"a.parquet": 3, "b.parquet": 1, "c.parquet": 0})
    assert progress.complete() == ["c.parquet"]  # every row already in part files: commit at once
    assert progress.add("b.parquet", "1") is True
    assert progress.add("a.parquet", "2") is False
    assert progress.add("a.parquet", "1") is True
    assert progress.add("a.parquet", "1") is False  # a duplicate past the end never completes it again


def test_document_parts_finish_documents_by_their_segment_shares(tmp_path):
    """Document mode: segments of one document in several batches finish it only together, exactly."""
    from pipeline.columns import NSEG, SEG
    from pipeline.documents.units import DocumentUnit

    path = make_input(tmp_path, {"id": ["d", "e"], "source": ["A. B. C.", "E."]})
    rows = translated(pa.table({"id": ["d", "d", "d", "e"], "source": list("ABCE")}), path)
    rows = rows.append_column(SEG, pa.array([0, 1, 2, 0], pa.int32())).append_column(
        NSEG, pa.array([3, 3, 3, 1], pa.int32()))
    progress = ShardProgress({"s1.parquet": 2})
    completed = []
    for batch in (rows.slice(0, 1), rows.slice(1, 2), rows.slice(3)):
        out = write_parts(batch, str(tmp_path / "out"), {str(path): "s1.parquet"}, "id", {}, DocumentUnit())
        completed += [progress.add(s, d) for s, d in zip(out.column(SHARD_COLUMN).to_pylist(),
                                                         out.column(ROWS_DONE_COLUMN).to_pylist(), strict=True)]
    # 1/3 of d, then 2/3 of d (d done), then e: the shard is complete with the last part only
    assert completed == [False, False, True]


def test_an_output_started_before_model_files_were_fingerprinted_resumes_and_records_them(tmp_path):
    from pipeline.output import claim_output

    fs, root = resolve(str(tmp_path / "out"))
    layout = OutputLayout(root)
    earlier = {"model_weights": ["w"], "beam_size": 5, "precision": "fp32"}
    fs.makedirs(root, exist_ok=True)
    fs.pipe_file(layout.run_file, json.dumps(earlier).encode())
    now = {"model_weights": ["w"], "model_files": [{"config.json": "c", "model.safetensors": "w"}], "beam_size": 5,
           "precision": "auto"}
    claim_output(fs, layout, now)  # not "other settings": the earlier version recorded no files
    recorded = json.loads(fs.cat_file(layout.run_file))
    assert recorded["model_files"] == now["model_files"] and recorded["precision"] == "fp32"
    with pytest.raises(InputError, match=r"other settings \(model_files\)"):
        claim_output(fs, layout, {**now, "model_files": [{"config.json": "other", "model.safetensors": "w"}]})


def test_length_limit_rows_are_counted_per_shard_and_overall(tmp_path):
    """Rows cut at the length limit (issue 31) are counted like every status: in the write stage's run
    statistics, in each shard's commit, and in the report's groups, overall block and report.md."""
    from pipeline.scoring.report import build_report, report_markdown

    stats = {}
    for name, cut in (("s1.parquet", [True, False, False, True]), ("s2.parquet", [False, False, False, False])):
        path = make_input(tmp_path, ROWS, name=f"in/{name}")
        table = translated(pa.table(ROWS), path)
        table = table.set_column(table.column_names.index("status"), "status",
                                 pa.array(["length_limit" if c else "ok" for c in cut]))
        written = write_parts(table, str(tmp_path / "out"), {str(path): name}, "id", {})
        (run,) = [RunStats.from_json(t) for t in written.column(STATS_COLUMN).to_pylist()]
        assert run.status == ({"length_limit": 2, "ok": 2} if any(cut) else {"ok": 4})
    _, shards, columns, _ = discover_shards(str(tmp_path / "in"), "id", "source", "reference")
    for shard in shards:
        stats[shard.name] = commit_shard(shard, str(tmp_path / "in"), str(tmp_path / "out"), columns,
                                         output_fields(1, False), ("bleu",), MetricOptions(), {})
    report = build_report(stats, MetricOptions())
    assert report["groups"]["s1.parquet"]["status"] == {"length_limit": 2, "ok": 2}
    assert report["groups"]["s2.parquet"]["status"] == {"ok": 4}
    assert report["overall"]["status"] == {"length_limit": 2, "ok": 6}
    assert "Status: length_limit 2, ok 6." in report_markdown(report, "Translation report")


def test_report_md_opens_with_the_model_the_decoding_the_input_the_output_and_the_time():
    from pipeline.scoring.report import report_markdown

    decode = {"beam_size": 5, "precision": "fp32", "engine": "ours", "nbest": 1, "length_penalty": "average",
              "alpha": 1.0, "max_len_a": 1.5, "max_len_b": 10, "no_repeat_ngram_size": 0, "max_source_tokens": 256,
              "long_policy": "split", "unit": "document"}
    report = {"overall": {"sentences": 12, "scores": {}}, "groups": {}, "decode": decode,
              "model": {"uri": "s3://m/multi30k-en-de", "name": "multi30k-en-de", "card": "s3://m/multi30k-en-de/README.md",
                        "arch": "transformer", "ensemble": []},
              "config": {"input": "s3://in/", "output": "s3://out/"}, "created": "2026-12-05T04:00:00+00:00"}
    lines = report_markdown(report, "Translation report").splitlines()
    assert lines[2:8] == [
        "- Model: **multi30k-en-de** (transformer, `s3://m/multi30k-en-de`, card `s3://m/multi30k-en-de/README.md`)",
        "- Decoding: beam 5, fp32, engine ours, n-best 1, length penalty average (alpha 1), max length 1.5 x source "
        "+ 10, no-repeat n-gram off, sources over 256 tokens split, unit document",
        "- Input: `s3://in/`", "- Output: `s3://out/`", "- Made: 2026-12-05T04:00:00+00:00", ""]
    assert "**12 documents.**" in lines
