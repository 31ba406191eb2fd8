"""The translation memory and in-run deduplication through the job (local Ray): identical segments decoded once,
a second run taking them from the memory, documents sharing the sentences' translations."""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.io import read_table
from tests.integration.test_translate_job import outputs, run


@pytest.fixture(scope="module")
def sentences(sample_corpus):
    return read_table(sample_corpus).column("source").to_pylist()[:30]


@pytest.fixture(scope="module")
def repeated(tmp_path_factory, sentences):
    """60 rows in 3 shards holding 30 distinct sentences: b repeats half of a's, c all of them."""
    root = tmp_path_factory.mktemp("repeated")
    for name, rows in (("a", sentences[:20]), ("b", sentences[10:30]), ("c", sentences[:20])):
        start = {"a": 0, "b": 100, "c": 200}[name]
        pq.write_table(pa.table({"id": list(range(start, start + len(rows))), "source": rows}),
                       root / f"{name}.parquet")
    return str(root)


def report(out):
    with open(os.path.join(out, "report.json")) as fh:
        return json.load(fh)


def by_id(out, column="translation"):
    table = outputs(out)
    return dict(zip(table.column("id").to_pylist(), table.column(column).to_pylist(), strict=True))


def test_a_run_decodes_each_distinct_sentence_once_and_the_next_takes_them_from_the_memory(
        local_ray, tiny_checkpoint, repeated, sentences, tmp_path, capsys):
    memory = str(tmp_path / "memory")
    cold, night1, night2 = (str(tmp_path / name) for name in ("cold", "night1", "night2"))
    assert run(tiny_checkpoint, repeated, cold) == 0  # no memory: deduplication alone
    run_block = report(cold)["run"]
    assert run_block["duplicate_segments"] == 30 and "memory" not in run_block
    assert sum(g["duplicate_segments"] for g in report(cold)["groups"].values()) == 30

    assert run(tiny_checkpoint, repeated, night1, "--memory", memory) == 0
    assert report(night1)["run"]["memory"] == {"uri": memory, "hits": 0, "misses": 60, "written": 30,
                                                 "refreshed": 0}
    assert run(tiny_checkpoint, repeated, night2, "--memory", memory) == 0
    night2_report = report(night2)
    assert night2_report["run"]["memory"] == {"uri": memory, "hits": 60, "misses": 0, "written": 0,
                                                 "refreshed": 60}  # each shard refreshes its own
    assert night2_report["run"]["target_tokens"] == 0  # nothing decoded
    assert night2_report["groups"]["c.parquet"]["memory"] == {"hits": 20, "misses": 0, "written": 0,
                                                              "refreshed": 20}
    assert "reuse: memory 60 hits, 0 misses, 0 entries written" in capsys.readouterr().out
    for out in (night1, night2):
        assert by_id(out) == by_id(cold) and by_id(out, "status") == by_id(cold, "status")
        assert report(out)["overall"]["sentences"] == 60


def test_documents_take_their_sentences_from_the_memory(local_ray, tiny_checkpoint, repeated, sentences, tmp_path):
    memory = str(tmp_path / "memory")
    assert run(tiny_checkpoint, repeated, str(tmp_path / "sentences"), "--memory", memory) == 0
    docs = tmp_path / "docs"
    docs.mkdir()
    texts = [" ".join(sentences[i:i + 3]) for i in range(0, 30, 3)] + ["\n\n".join(sentences[:2])]
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(len(texts))], "source": texts}), docs / "d.parquet")
    warm, cold = str(tmp_path / "warm"), str(tmp_path / "cold")
    assert run(tiny_checkpoint, str(docs), warm, "--unit", "document", "--write-segments", "--memory", memory) == 0
    assert run(tiny_checkpoint, str(docs), cold, "--unit", "document", "--write-segments") == 0
    segments = sum(len(s) for s in outputs(warm).column("source_segments").to_pylist())
    used = report(warm)["run"]["memory"]
    # Every segment the splitter cut as the sentence it was in the sentence run is a hit; the rest are decoded.
    assert used["hits"] + used["misses"] == segments and used["hits"] >= 0.8 * segments
    assert by_id(warm) == by_id(cold) and by_id(warm, "status") == by_id(cold, "status")
