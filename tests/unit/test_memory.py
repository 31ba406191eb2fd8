"""The translation memory and in-run deduplication (pipeline/memory/), without Ray: keys, the Lance store, the
board, and the model actor reusing what they hold."""

import multiprocessing
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from model.decoding import DecodeConfig
from pipeline.columns import MEMORY
from pipeline.memory import (
    MEMORY_SCHEMA as SCHEMA,
)
from pipeline.memory import (
    Reuse,
    ReuseSpec,
    SegmentBoard,
    TranslationMemory,
    memory_entries,
    memory_fingerprint,
    segment_keys,
)
from pipeline.settings import LanguageChoice, TranslationSettings
from pipeline.stages import Detokenize, Translator
from pipeline.stages.tokenize import Tokenize

DECODE = DecodeConfig(beam_size=2, max_len_a=0.0, max_len_b=6)
RESOLVED = TranslationSettings(precision="fp32")


def test_a_key_is_the_ids_the_model_sees_under_the_fingerprint():
    fp = memory_fingerprint(["sha-a"], RESOLVED)
    keys = segment_keys(fp, [[[5, 6, 2]], [[5, 6, 2]], [[5, 2], [6, 2]], [], [[5, 6, 2]]],
                        [[], [], [], [], [9]])
    assert keys[0] == keys[1] and len(keys[0]) == 32
    assert keys[2] != keys[0]  # the same ids cut into two pieces are another segment
    assert keys[3] is None  # nothing to decode
    assert keys[4] != keys[0]  # another forced target language
    assert segment_keys(memory_fingerprint(["sha-b"], RESOLVED), [[[5, 6, 2]]], None)[0] != keys[0]


def test_the_fingerprint_holds_what_changes_a_translation_and_nothing_else():
    fp = memory_fingerprint(["sha"], RESOLVED)
    # Sentence and document runs, with or without scores or segments written, share translations.
    assert memory_fingerprint(["sha"], replace(RESOLVED, unit="document", write_segments=True)) == fp
    assert memory_fingerprint(["sha"], replace(RESOLVED, write_scores=True)) == fp
    for other in (replace(RESOLVED, precision="int8"), replace(RESOLVED, decode=DecodeConfig(beam_size=2)),
                  replace(RESOLVED, max_source_tokens=64), replace(RESOLVED, engine="ctranslate2")):
        assert memory_fingerprint(["sha"], other) != fp
    assert memory_fingerprint(["sha", "member"], RESOLVED) != fp  # an ensemble is another model
    with pytest.raises(ValueError, match="resolved"):
        memory_fingerprint(["sha"], TranslationSettings())  # precision "auto" is not what a row decoded in


def entries(keys, translation="x", last_used=None, fingerprint="fp"):
    n = len(keys)
    return pa.table({
        "key": keys, "fingerprint": [fingerprint] * n, "source_lang": ["en"] * n, "target_lang": [""] * n,
        "source": [f"source {k}" for k in keys], "translation": [translation] * n,
        "hyp_ids": [[[1, 2, i]] for i in range(n)], "score": [-0.5] * n, "nbest_scores": [[-0.5]] * n,
        "length_limited": [False] * n,
        "last_used": pa.array([last_used or datetime.now(UTC)] * n, SCHEMA.field("last_used").type),
    }).cast(SCHEMA)


def test_the_memory_inserts_once_refreshes_and_looks_up(tmp_path):
    memory = TranslationMemory(str(tmp_path / "tm"))
    assert not memory.exists()
    memory.create_if_missing()
    memory.create_if_missing()  # a second run finds it
    assert memory.lookup(["a" * 32]) == {}
    keys = [f"{i:032x}" for i in range(10)]
    assert memory.record(entries(keys[:6])) == {"written": 6, "refreshed": 0}
    memory.index()
    # A retried commit writes nothing twice; new keys beside old ones are inserted.
    assert memory.record(entries(keys[4:])) == {"written": 4, "refreshed": 2}
    assert memory.dataset(refresh=True).count_rows() == 10
    # Reused keys get only their last use moved (an unknown key refreshes nothing).
    before = memory.dataset().to_table(filter="key = '" + keys[0] + "'").to_pylist()[0]
    assert memory.record(entries([]), [keys[0], "e" * 32]) == {"written": 0, "refreshed": 1}
    after = memory.dataset(refresh=True).to_table(filter="key = '" + keys[0] + "'").to_pylist()[0]
    assert after["last_used"] > before["last_used"] and {**after, "last_used": 0} == {**before, "last_used": 0}
    found = memory.lookup([keys[1], keys[8], "f" * 32])  # one indexed, one added since the index was built
    assert set(found) == {keys[1], keys[8]}
    assert found[keys[1]] == {"hyp_ids": [[1, 2, 1]], "score": -0.5, "nbest_scores": [-0.5], "length_limited": False}


def test_compaction_drops_what_no_run_used_for_n_days(tmp_path):
    memory = TranslationMemory(str(tmp_path / "tm"))
    memory.create_if_missing()
    old = datetime.now(UTC) - timedelta(days=40)
    memory.record(entries([f"{i:032x}" for i in range(5)], last_used=old))
    memory.record(entries([f"{i:032x}" for i in range(5, 8)]))
    memory.record(entries([]), [f"{i:032x}" for i in range(2)])  # used again today: refreshed
    result = memory.compact(unused_days=30)
    assert (result["entries_before"], result["entries"], result["dropped"]) == (8, 5, 3)
    assert set(memory.lookup([f"{i:032x}" for i in range(8)])) == {f"{i:032x}" for i in (0, 1, 5, 6, 7)}


def _append(args):
    uri, worker = args
    memory = TranslationMemory(uri)
    for batch in range(3):
        memory.record(entries([f"{worker:08x}{batch:08x}{i:016x}" for i in range(50)]))


def test_runs_writing_one_memory_at_once_lose_nothing(tmp_path):
    uri = str(tmp_path / "tm")
    TranslationMemory(uri).create_if_missing()
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        pool.map(_append, [(uri, w) for w in range(3)])
    ds = TranslationMemory(uri).dataset()
    assert ds.count_rows() == 3 * 3 * 50 == len(set(ds.to_table(columns=["key"]).column("key").to_pylist()))


def test_the_board_gives_each_segment_to_one_actor():
    board = SegmentBoard()
    found, mine, pending = board.acquire(["a", "b"])
    assert (found, mine, pending) == ({}, ["a", "b"], [])
    assert board.acquire(["b", "c"]) == ({}, ["c"], ["b"])  # b is another actor's, being decoded
    board.publish({"b": {"hyp_ids": [[7]]}})
    assert board.acquire(["b"]) == ({"b": {"hyp_ids": [[7]]}}, [], [])
    assert board.lookup(["a", "b"]) == {"b": {"hyp_ids": [[7]]}}


@pytest.fixture(scope="module")
def stages(tiny_checkpoint):
    return (Tokenize(tiny_checkpoint, "source", max_source_tokens=12, long_policy="split", storage_options={}),
            Translator(tiny_checkpoint, DECODE, "fp32", max_tokens=200, torch_threads=1, storage_options={}),
            Detokenize(tiny_checkpoint, nbest=1, write_scores=True, storage_options={}))


SOURCES = ["A dog runs.", "Two girls.", "A dog runs.", None, "A man in a blue shirt is standing on a ladder. Two "
           "dogs run across the green grass.", "Two girls.", "A dog runs."]


def test_identical_segments_are_decoded_once_and_translated_alike(stages, monkeypatch):
    tok, plain, detok = stages
    tokenized = tok(pa.table({"id": list(range(len(SOURCES))), "source": SOURCES}))
    expected = detok(plain(tokenized))
    board = SegmentBoard()
    actor = replace_reuse(plain, Reuse(ReuseSpec("fp"), board=board))
    decoded = []
    real = actor._decode
    monkeypatch.setattr(actor, "_decode", lambda *a: decoded.extend(a[-1]) or real(*a))
    first = actor(tokenized)
    assert sorted(decoded) == [0, 1, 4]  # one row per distinct segment
    labels = [m and m["reuse"] for m in first.column(MEMORY).to_pylist()]
    assert labels == ["decoded", "decoded", "duplicate", None, "decoded", "duplicate", "duplicate"]
    out = detok(first)
    for column in ("translation", "status"):
        assert out.column(column).to_pylist() == expected.column(column).to_pylist()
    # Scores of rows decoded in other company differ in float rounding only (padding changes the sums' order).
    assert out.column("score").to_pylist() == [pytest.approx(s, rel=1e-5) if s is not None else None
                                               for s in expected.column("score").to_pylist()]
    # Another call of the run (another actor's, through the board) decodes nothing.
    decoded.clear()
    again = actor(tokenized)
    assert decoded == [] and {m["reuse"] for m in again.column(MEMORY).to_pylist() if m} == {"duplicate"}
    assert detok(again).column("translation").to_pylist() == expected.column("translation").to_pylist()
    stats = [r["decode_seconds"] >= 0 and r["target_tokens"] for r in again.column("__row_stats").to_pylist()]
    assert stats == [0] * len(SOURCES)  # nothing decoded, no tokens counted


def test_a_segment_another_actor_still_decodes_is_decoded_here_rather_than_waited_for(stages):
    tok, plain, detok = stages
    tokenized = tok(pa.table({"id": [0], "source": ["A dog runs."]}))
    board = SegmentBoard()
    key = segment_keys("fp", tokenized.column("__pieces").to_pylist(), None)[0]
    board.acquire([key])  # claimed by an actor that never publishes (its node was lost)
    out = replace_reuse(plain, Reuse(ReuseSpec("fp"), board=board))(tokenized)
    assert out.column(MEMORY).to_pylist()[0]["reuse"] == "decoded"
    assert detok(out).column("translation").to_pylist() == detok(plain(tokenized)).column("translation").to_pylist()


def test_the_memory_gives_back_the_translation_and_its_scores(stages, tmp_path):
    tok, plain, detok = stages
    tokenized = tok(pa.table({"id": list(range(len(SOURCES))), "source": SOURCES}))
    spec = ReuseSpec("fp", memory_uri=str(tmp_path / "tm"))
    memory = TranslationMemory(spec.memory_uri)
    memory.create_if_missing()
    night1 = detok(replace_reuse(plain, Reuse(spec, board=SegmentBoard()))(tokenized))
    rows, reused = memory_entries(night1, "fp", "source", LanguageChoice())
    assert rows.num_rows == 3 and reused == [] and rows["translation"][0].as_py() == night1["translation"][0].as_py()
    assert memory.record(rows)["written"] == 3
    night2 = replace_reuse(plain, Reuse(spec, board=SegmentBoard()))(tokenized)
    labels = [m and m["reuse"] for m in night2.column(MEMORY).to_pylist()]
    assert labels == ["memory", "memory", "memory", None, "memory", "memory", "memory"]
    night2 = detok(night2)
    rows, reused = memory_entries(night2, "fp", "source", LanguageChoice())
    assert rows.num_rows == 0 and len(reused) == 3  # nothing new; three entries to refresh
    for column in ("translation", "status", "score"):
        assert night2.column(column).to_pylist() == night1.column(column).to_pylist()


def replace_reuse(translator, reuse):
    """The module's Translator (its model loaded once) with another Reuse."""
    import copy

    actor = copy.copy(translator)
    actor.reuse = reuse
    return actor


def test_the_compaction_job_drops_unused_entries_and_names_a_missing_memory(tmp_path, capsys):
    import json

    from jobs.compact_memory import main as compact

    uri = str(tmp_path / "tm")
    assert compact(["--memory", uri]) == 2 and "no translation memory" in capsys.readouterr().err
    memory = TranslationMemory(uri)
    memory.create_if_missing()
    memory.record(entries([f"{i:032x}" for i in range(4)], last_used=datetime.now(UTC) - timedelta(days=10)))
    memory.record(entries([f"{i:032x}" for i in range(4, 6)]))
    assert compact(["--memory", uri, "--unused-days", "7"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["entries_before"], result["entries"], result["dropped"]) == (6, 2, 4)


def test_an_unreadable_memory_costs_the_reuse_never_the_translation(stages, tmp_path, capsys):
    tok, plain, detok = stages
    tokenized = tok(pa.table({"id": [0, 1], "source": ["A dog runs.", "A dog runs."]}))
    (tmp_path / "tm").write_text("not a Lance dataset")
    out = replace_reuse(plain, Reuse(ReuseSpec("fp", memory_uri=str(tmp_path / "tm")), board=SegmentBoard()))(tokenized)
    assert [m["reuse"] for m in out.column(MEMORY).to_pylist()] == ["decoded", "duplicate"]
    assert "unreadable" in capsys.readouterr().err
    assert detok(out).column("translation").to_pylist() == detok(plain(tokenized)).column("translation").to_pylist()
