"""Sources stored as binary (UTF-8 bytes) and dictionary-encoded ids, through the stages and the commit. No Ray."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.decoding import DecodeConfig
from pipeline.columns import PATH, ROW_STATS, output_fields
from pipeline.documents.units import DocumentUnit
from pipeline.inputs import check_unique_ids, discover_shards
from pipeline.output import commit_shard, row_stats_array
from pipeline.scoring import MetricOptions
from pipeline.stages import Detokenize, Tokenize, Translator, write_parts

SOURCES = ["A dog runs.", None, "Two girls.", "Ünïcödé."]
BAD = b"\xff\xfe not utf-8"
INVALID_UTF8 = "invalid_utf8"  # the row status


@pytest.mark.parametrize("kind", [pa.binary(), pa.large_binary()])
def test_binary_text_is_decoded_and_invalid_bytes_are_flagged(kind):
    from pipeline.inputs import decode_texts

    column = pa.chunked_array([pa.array([s.encode() if s else s for s in SOURCES] + [BAD], kind)])
    texts, invalid = decode_texts(column)
    assert texts == SOURCES + [None] and invalid == [False] * 4 + [True]
    assert decode_texts(pa.chunked_array([pa.array(SOURCES)])) == (SOURCES, [False] * 4)


@pytest.fixture(scope="module")
def stages(tiny_checkpoint):
    return (Tokenize(tiny_checkpoint, "source", max_source_tokens=12, long_policy="split", storage_options={}),
            Translator(tiny_checkpoint, DecodeConfig(beam_size=2, max_len_a=0.0, max_len_b=6), "fp32", max_tokens=200,
                       torch_threads=1, storage_options={}),
            Detokenize(tiny_checkpoint, nbest=1, write_scores=False, storage_options={}))


@pytest.mark.parametrize("kind", [pa.binary(), pa.large_binary()])
def test_a_binary_source_is_translated_as_its_text(stages, kind):
    tok, tr, detok = stages
    as_text = pa.table({"id": list("abcd"), "source": SOURCES})
    as_bytes = pa.table({"id": list("abcde"), "source": pa.array([s.encode() if s else s for s in SOURCES] + [BAD],
                                                                 kind)})
    text_rows = detok(tr(tok(as_text))).to_pylist()
    rows = detok(tr(tok(as_bytes))).to_pylist()
    # a random tiny model may run to the length limit: the statuses are the text run's, whatever they are
    assert [r["status"] for r in rows] == [r["status"] for r in text_rows] + [INVALID_UTF8]
    assert rows[1]["status"] == "empty" and {rows[i]["status"] for i in (0, 2, 3)} <= {"ok", "length_limit"}
    assert [r["translation"] for r in rows[:4]] == [r["translation"] for r in text_rows]
    assert rows[4]["translation"] is None  # nothing was translated: not an empty translation
    assert rows[4]["source"] == BAD  # the input column passes through as it was


def test_a_binary_document_is_cut_translated_and_put_back(tmp_path):
    docs = [b"A dog runs. It is fast.\n\nTwo cats.", BAD, None]
    path = tmp_path / "in" / "docs.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"id": ["d0", "d1", "d2"], "source": pa.array(docs, pa.binary())}), path)
    unit = DocumentUnit()
    table = pq.read_table(path).append_column(PATH, pa.array([str(path)] * 3))
    segments = unit.explode("id", "source")(table)
    assert segments.column("source").to_pylist() == ["A dog runs.", "It is fast.", "Two cats."]
    n = segments.num_rows
    part = (segments.append_column("translation", pa.array([s.upper() for s in segments.column("source").to_pylist()]))
            .append_column("status", pa.array(["ok"] * n))
            .append_column(ROW_STATS, row_stats_array([1] * n, [1] * n, [1] * n, 0.01, 1.0)))
    write_parts(part, str(tmp_path / "out"), {str(path): "docs.parquet"}, "id", {}, unit)
    _, (shard,), columns, _ = discover_shards(str(path), "id", "source", "reference")
    stats = commit_shard(shard, str(path), str(tmp_path / "out"), columns, output_fields(1, False), (),
                         MetricOptions(), {}, unit)
    result = pq.read_table(tmp_path / "out" / "translations" / "docs.parquet").to_pylist()
    assert [r["translation"] for r in result] == ["A DOG RUNS. IT IS FAST.\n\nTWO CATS.", None, ""]
    assert [r["status"] for r in result] == ["ok", INVALID_UTF8, "empty"]
    assert stats["status"] == {"ok": 1, INVALID_UTF8: 1, "empty": 1}


def test_dictionary_encoded_ids_commit(tmp_path):
    ids = pa.array(["x3", "x1", "x2"]).dictionary_encode()
    path = tmp_path / "in" / "s1.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"id": ids, "source": ["c", "a", "b"]}), path)
    fs, (shard,), columns, _ = discover_shards(str(path), "id", "source", "reference")
    check_unique_ids(fs, [shard], "id")
    rows = pq.read_table(path)
    rows = (rows.append_column(PATH, pa.array([str(path)] * 3))
            .append_column("translation", pa.array(["C", "A", "B"])).append_column("status", pa.array(["ok"] * 3))
            .append_column(ROW_STATS, row_stats_array([1] * 3, [1] * 3, [1] * 3, 0.01, 1.0)))
    for batch in (rows.slice(1), rows.slice(0, 1)):  # parts arrive out of order, each with its own dictionary
        write_parts(batch, str(tmp_path / "out"), {str(path): shard.name}, "id", {})
    commit_shard(shard, str(path), str(tmp_path / "out"), columns, output_fields(1, False), (), MetricOptions(), {})
    result = pq.read_table(tmp_path / "out" / "translations" / "s1.parquet")
    assert result.column("id").to_pylist() == ["x3", "x1", "x2"] and result.column("translation").to_pylist() == [
        "C", "A", "B"]
    assert result.schema.field("id").type == pq.read_schema(path).field("id").type  # still dictionary-encoded


def test_a_binary_reference_is_scored_as_its_text(tmp_path):
    stats = {}
    for kind in (pa.string(), pa.binary()):
        path = tmp_path / str(kind) / "s1.parquet"
        path.parent.mkdir(parents=True)
        refs = pa.array([b"Ein Hund rennt.", b"Zwei Katzen."]).cast(kind)
        pq.write_table(pa.table({"id": ["a", "b"], "source": ["A dog runs.", "Two cats."], "reference": refs}), path)
        _, (shard,), columns, _ = discover_shards(str(path), "id", "source", "reference")
        rows = (pq.read_table(path).append_column(PATH, pa.array([str(path)] * 2))
                .append_column("translation", pa.array(["Ein Hund.", "Zwei Katzen."]))
                .append_column("status", pa.array(["ok"] * 2))
                .append_column(ROW_STATS, row_stats_array([1] * 2, [1] * 2, [1] * 2, 0.01, 1.0)))
        out = str(tmp_path / str(kind) / "out")
        write_parts(rows, out, {str(path): shard.name}, "id", {})
        stats[kind] = commit_shard(shard, str(path), out, columns, output_fields(1, False), ("bleu", "chrf"),
                                   MetricOptions(), {})["metrics"]
    assert stats[pa.binary()] == stats[pa.string()] and stats[pa.string()]["bleu"][0] > 0
