"""Resume against an input that changed after its shard was committed, without Ray: the planning
(pipeline/output/resume.py shard_state), the part files the pipeline would write, and the commit."""

import json
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pipeline.output.commit as commit_module
from model.storage import resolve
from pipeline.columns import PATH, ROW_STATS, output_fields
from pipeline.documents.units import SENTENCES, DocumentUnit
from pipeline.inputs import KEPT_FILE, RowChanges, discover_shards
from pipeline.output import OutputLayout, commit_shard, row_stats_array
from pipeline.output.resume import ResumeContext, ShardState, shard_state
from pipeline.scoring import MetricOptions
from pipeline.stages import write_parts


@dataclass
class Where:
    """The input (<uri>/in) and the output (<uri>/out) of a test, on a local disk or on S3."""

    uri: str
    storage_options: dict

    @property
    def fs(self):
        return resolve(self.uri, self.storage_options)[0]

    def path(self, *parts: str) -> str:
        return resolve("/".join([self.uri, *parts]), self.storage_options)[1]

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    def read(self, *parts: str) -> pa.Table:
        with self.fs.open(self.path(*parts), "rb") as fh:
            return pq.read_table(fh)


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path):
    if request.param == "local":
        return Where(str(tmp_path), {})
    s3_server = request.getfixturevalue("s3_server")
    return Where(request.getfixturevalue("s3_bucket"), s3_server.storage_options)


def write_input(where, rows: dict, name="s.parquet"):
    where.fs.makedirs(where.path("in"), exist_ok=True)
    with where.fs.open(where.path("in", name), "wb") as fh:
        pq.write_table(pa.table(rows), fh)
    time.sleep(0.01)  # a rewrite within the same tick must still read as another version (it does: ctime_ns)


def plan(where, unit=None):
    """What the driver does before decoding: list the input, decide each shard's state."""
    in_fs, (shard,), columns, _ = discover_shards(f"{where.uri}/in", "id", "source", "reference",
                                                  where.storage_options)
    added = output_fields(1, False, bool(unit and unit.write_segments))
    extra = {"unit": unit} if unit is not None else {}
    ctx = ResumeContext(in_fs, where.fs, OutputLayout(where.path("out")), columns, tuple(added), **extra)
    return shard, columns, shard_state(ctx, shard)


def translate(where, shard, state, tag, unit=None):
    """The pipeline's work on this shard: every row not already done, 'translated' as tag + source."""
    with where.fs.open(shard.path, "rb") as fh:
        table = pq.read_table(fh).append_column(PATH, pa.array([shard.path] * shard.rows, pa.string()))
    table = table.filter(pa.array([i not in state.ids for i in table.column("id").to_pylist()], pa.bool_()))
    if unit is not None:
        table = unit.explode("id", "source")(table)
    n = table.num_rows
    table = (table.append_column("translation", pa.array([f"{tag}:{s}" for s in table.column("source").to_pylist()]))
             .append_column("status", pa.array(["ok"] * n))
             .append_column(ROW_STATS, row_stats_array([1] * n, [1] * n, [1] * n, 0.0, 1.0)))
    write_parts(table, f"{where.uri}/out", {shard.path: shard.name}, "id", where.storage_options,
                unit or SENTENCES, "fp32", {shard.path: shard.version.key()})
    return n


def commit(where, shard, columns, unit=None):
    added = output_fields(1, False, bool(unit and unit.write_segments))
    return commit_shard(shard, f"{where.uri}/in", f"{where.uri}/out", columns, added, ("bleu",), MetricOptions(),
                        where.storage_options, unit or SENTENCES)


def output(where, name="s.parquet"):
    return where.read("out", "translations", name).to_pylist()


def first_commit(where, rows):
    write_input(where, rows)
    shard, columns, state = plan(where)
    assert state == ShardState(False)
    translate(where, shard, state, "v1")
    commit(where, shard, columns)
    assert plan(where)[2] == ShardState(True)


V1 = {"id": ["a", "b", "c"], "source": ["one", "two", "three"], "reference": ["eins", "zwei", "drei"]}


def test_a_shard_changed_after_its_commit_is_brought_in_line_with_its_input(where):
    """Issue 31: upstream appended rows and edited a source after the commit; the re-run skipped the shard
    and reported rows done that were not in the output (before the fix: shard_state said done)."""
    first_commit(where, V1)
    # b edited, c removed, d and e appended; a's reference corrected (a pass-through column, not a source)
    write_input(where, {"id": ["e", "a", "b", "d"], "source": ["five", "one", "TWO", "four"],
                           "reference": ["fünf", "eins!", "zwei", "vier"]})
    shard, columns, state = plan(where)
    assert not state.done and state.ids == {"a"}
    assert state.changes == RowChanges(added=2, edited=1, removed=1, kept=1)
    assert where.exists("out", "_parts", "s.parquet", KEPT_FILE)
    assert output(where)[2]["id"] == "c"  # the committed output stays until the new commit replaces it
    assert translate(where, shard, state, "v2") == 3  # only the added and edited rows are decoded
    stats = commit(where, shard, columns)
    rows = output(where)
    assert [r["id"] for r in rows] == ["e", "a", "b", "d"]  # input order, c dropped
    assert [r["translation"] for r in rows] == ["v2:five", "v1:one", "v2:TWO", "v2:four"]  # a kept as it was
    assert rows[1]["reference"] == "eins!"  # kept rows carry the input's columns as they are now
    assert stats["sentences"] == 4 and stats["input"] == shard.version.as_dict()
    assert stats["decoded_with"] == {"fp32": 4}
    assert not where.exists("out", "_parts", "s.parquet")
    assert plan(where)[2] == ShardState(True)  # and the next run has nothing to do


def test_a_rewritten_but_identical_input_is_recorded_without_writing_the_output_again(where):
    first_commit(where, V1)
    translations = where.path("out", "translations", "s.parquet")
    before = where.fs.info(translations)
    write_input(where, V1)  # same rows, a new file: another mtime (on S3 the same ETag)
    shard, _, state = plan(where)
    assert state == ShardState(True)
    assert where.fs.info(translations) == before
    stats = json.loads(where.fs.cat_file(where.path("out", "_stats", "s.parquet.json")))
    assert stats["input"] == shard.version.as_dict()


def test_an_output_that_predates_recorded_versions_is_compared_once(where):
    first_commit(where, V1)
    stats_file = where.path("out", "_stats", "s.parquet.json")
    stats = json.loads(where.fs.cat_file(stats_file))
    del stats["input"]  # as the previous version of the job wrote it
    where.fs.pipe_file(stats_file, json.dumps(stats).encode())
    assert plan(where)[2] == ShardState(True)
    assert "input" in json.loads(where.fs.cat_file(stats_file))
    # ... and one whose input changed since is brought in line like any other
    where.fs.pipe_file(stats_file, json.dumps(stats).encode())
    write_input(where, {**V1, "source": ["one", "two", "THREE"]})
    assert plan(where)[2].changes == RowChanges(edited=1, kept=2)


def test_every_row_removed_commits_an_empty_output(where):
    first_commit(where, V1)
    write_input(where, {k: pa.array([], pa.string()) for k in V1})
    shard, columns, state = plan(where)
    assert state.changes == RowChanges(removed=3) and not state.done
    assert commit(where, shard, columns)["sentences"] == 0  # not the old statistics of 3 rows
    assert output(where) == []


def test_a_commit_killed_after_writing_the_translations_is_done_again_with_every_id_once(where, monkeypatch):
    first_commit(where, V1)
    write_input(where, {"id": ["a", "b", "d"], "source": ["one", "TWO", "four"], "reference": ["", "", ""]})
    shard, columns, state = plan(where)
    translate(where, shard, state, "v2")
    real = commit_module.write_bytes_atomic

    def dies_before_the_stats(fs, path, data):
        if path.endswith(".json"):
            raise KeyboardInterrupt("killed")
        real(fs, path, data)

    monkeypatch.setattr(commit_module, "write_bytes_atomic", dies_before_the_stats)
    with pytest.raises(KeyboardInterrupt):
        commit(where, shard, columns)
    monkeypatch.setattr(commit_module, "write_bytes_atomic", real)
    shard, columns, state = plan(where)  # new translations, old stats, parts left: committed again
    assert not state.done and state.ids == {"a", "b", "d"}
    assert translate(where, shard, state, "v3") == 0
    commit(where, shard, columns)
    rows = output(where)
    assert [r["id"] for r in rows] == ["a", "b", "d"]
    assert [r["translation"] for r in rows] == ["v1:one", "v2:TWO", "v2:four"]
    assert plan(where)[2] == ShardState(True)


def test_parts_of_another_input_version_count_only_where_their_rows_still_match(where):
    """A run died with part files; the input was edited before the re-run: a part holding an edited row is
    translated again, a part whose rows are unchanged is kept."""
    write_input(where, {"id": ["a", "b", "c", "d"], "source": ["1", "2", "3", "4"]})
    shard, columns, _ = plan(where)
    for ids in (["a", "b"], ["c"]):
        translate(where, shard, ShardState(False, {"a", "b", "c", "d"} - set(ids)), "v1")
    write_input(where, {"id": ["a", "b", "c", "d"], "source": ["1", "2", "3 edited", "4"]})
    shard, columns, state = plan(where)
    assert state.ids == {"a", "b"} and state.changes is None
    assert len(where.fs.find(where.path("out", "_parts", "s.parquet"))) == 1
    translate(where, shard, state, "v2")
    commit(where, shard, columns)
    assert [r["translation"] for r in output(where)] == ["v1:1", "v1:2", "v2:3 edited", "v2:4"]


def test_a_commit_refuses_an_input_that_changed_while_the_run_translated_it(where):
    write_input(where, V1)
    shard, columns, state = plan(where)
    translate(where, shard, state, "v1")
    write_input(where, {k: v + [v[0] + "x"] for k, v in V1.items()})  # upstream appends mid-run
    with pytest.raises(RuntimeError, match="input file changed while this run translated it"):
        commit(where, shard, columns)
    assert where.exists("out", "_parts", "s.parquet")
    shard, columns, state = plan(where)  # the re-run keeps the rows translated and adds the new one
    assert state.ids == {"a", "b", "c"}
    assert translate(where, shard, state, "v2") == 1
    commit(where, shard, columns)
    assert [r["id"] for r in output(where)] == ["a", "b", "c", "ax"]


DOCS = ["First sentence. Second one.", "Lone line", "A.\n\nB."]


def test_a_changed_document_shard_keeps_unchanged_documents_and_translates_the_others(where):
    unit = DocumentUnit(write_segments=True)
    write_input(where, {"id": ["d0", "d1", "d2"], "source": DOCS})
    shard, columns, state = plan(where, unit)
    translate(where, shard, state, "v1", unit)
    commit(where, shard, columns, unit)
    first = output(where)
    write_input(where, {"id": ["d0", "d2", "d3"], "source": [DOCS[0], "A.\n\nB changed.", "New. Doc."]})
    shard, columns, state = plan(where, unit)
    assert state.changes == RowChanges(added=1, edited=1, removed=1, kept=1) and state.ids == {"d0"}
    assert translate(where, shard, state, "v2", unit) == 4  # segments of d2 and d3 only
    commit(where, shard, columns, unit)
    rows = output(where)
    assert [r["id"] for r in rows] == ["d0", "d2", "d3"]
    assert rows[0] == first[0]  # kept whole: translation, status, segments
    assert rows[1]["translation"] == "v2:A.\n\nv2:B changed." and rows[2]["target_segments"] == ["v2:New.", "v2:Doc."]
    assert plan(where, unit)[2] == ShardState(True)


def test_document_parts_of_another_input_version_are_checked_against_the_new_segments(where):
    unit = DocumentUnit()
    write_input(where, {"id": ["d0", "d1"], "source": ["One. Two.", "Three. Four."]})
    shard, columns, state = plan(where, unit)
    translate(where, shard, state, "v1", unit)  # one part holding both documents' segments
    write_input(where, {"id": ["d0", "d1"], "source": ["One. Two.", "Three. Four. Five."]})
    shard, columns, state = plan(where, unit)
    assert state.ids == set()  # d1 has another segmentation now: the part goes, both are translated again
    assert not where.fs.find(where.path("out", "_parts", "s.parquet"))
