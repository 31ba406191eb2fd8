"""--unit document: documents cut into segments, translated with sentences of other documents, and put back
together with their exact layout."""

import os
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.storage import resolve
from pipeline.columns import NSEG, SEG, output_fields
from pipeline.documents import split_document
from pipeline.documents.units import DocumentUnit
from pipeline.inputs import discover_shards
from pipeline.io import table_to_parquet_bytes, write_bytes_atomic
from pipeline.output import OutputLayout, commit_shard
from pipeline.output.resume import ResumeContext, ShardState, shard_state
from pipeline.scoring import MetricOptions

DOCS = [
    "Title line\r\n\r\n  Indented paragraph. Second sentence!  \r\n- bullet one\n* bullet two\n• bullet three\n"
    "1. first item\n2) second item\n\n\n\nVisit https://example.com/a?b=1. Mail ops@example.org now.\n",
    "Ein Absatz. Noch ein Satz.\n\nZweiter Absatz ohne Punkt\n",
    "今日は晴れです。明日は雨でしょう。\n\nمرحبا. كيف حالك؟ 😀 Emoji too!",
    "https://only.a.url/here\n\tmail@only.example.com\n",
    "trailing spaces and a tab\t \r",
    "no sentence punctuation at all just words and more words",
    "",
    "   \n\t\n",
    None,
]


def identity(layout):
    return layout.fill(layout.segments)


@pytest.mark.parametrize("doc", DOCS)
def test_layout_round_trip_is_byte_for_byte(doc):
    layout = split_document(doc)
    assert identity(layout) == (doc or "")
    # Nothing that must stay verbatim is sent to the model: URLs, e-mail addresses, bullets, numbering.
    for seg in layout.segments:
        assert "://" not in seg and "@" not in seg and not seg.startswith(("- ", "* ", "• ", "1. ", "2) "))


def test_random_documents_round_trip():
    rng = random.Random(0)
    pieces = ["A sentence.", "Two words", "Ünïcödé ist schön!", "漢字。", "  ", "\t", "\n", "\r\n", "\n\n\n", "- ",
              "* ", "3. ", "https://x.org/p.q", "a@b.co", "Dr. No went home.", "?!", "42", " ", "e.g. this"]
    for _ in range(300):
        doc = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        assert identity(split_document(doc)) == doc
        assert identity(split_document(doc, max_chars=7)) == doc


def test_segments_are_sentences_and_lines_that_are_only_verbatim_are_copied():
    layout = split_document(DOCS[0])
    assert layout.segments == ["Title line", "Indented paragraph.", "Second sentence!", "bullet one", "bullet two",
                               "bullet three", "first item", "second item", "Visit", "Mail", "now."]
    assert split_document(DOCS[3]).segments == []  # a URL and an e-mail address only


def test_long_text_without_punctuation_is_cut_at_spaces():
    doc = " ".join(["word"] * 5000)
    layout = split_document(doc, max_chars=200)
    assert layout.cut and all(len(s) <= 200 for s in layout.segments) and identity(layout) == doc


def write_shard(tmp_path, docs, refs=None):
    path = tmp_path / "in" / "docs.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {"id": [f"d{i}" for i in range(len(docs))], "source": docs, "extra": list(range(len(docs)))}
    if refs is not None:
        columns["reference"] = refs
    pq.write_table(pa.table(columns), path)
    return path


def translate_parts(tmp_path, path, unit, translate, batch_rows=3, stages=None):
    """Explode the shard into segments as the pipeline does, 'translate' them, write part files. `stages`
    (a function of the segments table, returning it with `translation` and `status`) replaces `translate`."""
    table = pq.read_table(path).append_column("path", pa.array([str(path)] * pq.read_metadata(path).num_rows))
    segments = unit.explode("id", "source")(table)
    out = str(tmp_path / "out")
    fs, root = resolve(out)
    translated = stages(segments) if stages else None
    for start in range(0, segments.num_rows, batch_rows):
        part = segments.slice(start, batch_rows)
        if translated is not None:
            done = translated.slice(start, batch_rows)
            part = part.append_column("translation", done.column("translation"))
            part = part.append_column("status", done.column("status")).drop_columns(["path"])
            if "__align" in done.column_names:  # the detokenize stage's word alignment (inline markup)
                part = part.append_column("__align", done.column("__align"))
        else:
            texts = [translate(s) for s in part.column("source").to_pylist()]
            part = part.append_column("translation", pa.array(texts))
            part = part.append_column("status", pa.array(["ok"] * part.num_rows)).drop_columns(["path"])
        write_bytes_atomic(fs, f"{OutputLayout(root).parts('docs.parquet')}/part-{start}.parquet",
                           table_to_parquet_bytes(part))
    return out, segments


def resume_context(tmp_path, out, columns, unit, write_segments=False) -> ResumeContext:
    in_fs, _ = resolve(str(tmp_path))
    out_fs, root = resolve(out)
    return ResumeContext(in_fs, out_fs, OutputLayout(root), columns, tuple(output_fields(1, False, write_segments)),
                         unit)


def test_identity_translation_through_parts_and_commit_reproduces_every_document(tmp_path):
    path = write_shard(tmp_path, DOCS)
    unit = DocumentUnit(write_segments=True)
    out, segments = translate_parts(tmp_path, path, unit, translate=lambda s: s)
    assert set(segments.column(NSEG).to_pylist()) and SEG in segments.column_names
    _, (shard,), columns, _ = discover_shards(str(path), "id", "source", "reference")
    state = shard_state(resume_context(tmp_path, out, columns, unit), shard)
    assert not state.done and state.ids == {"d0", "d1", "d2", "d4", "d5"}  # documents with segments, all present
    stats = commit_shard(shard, str(path), out, columns, output_fields(1, False, True), (), MetricOptions(), {}, unit)
    result = pq.read_table(tmp_path / "out" / "translations" / "docs.parquet").to_pylist()
    # byte for byte, but for documents with nothing in them: their translation is the empty string
    assert [r["translation"] for r in result] == [d if d and d.strip() else "" for d in DOCS]
    assert [r["status"] for r in result] == ["ok"] * 6 + ["empty"] * 3
    assert [r["extra"] for r in result] == list(range(len(DOCS)))  # pass-through columns, input order
    assert result[1]["source_segments"] == ["Ein Absatz.", "Noch ein Satz.", "Zweiter Absatz ohne Punkt"]
    assert stats["sentences"] == len(DOCS)


def test_a_document_missing_a_segment_is_not_committed(tmp_path):
    path = write_shard(tmp_path, DOCS[:2])
    unit = DocumentUnit()
    out, _ = translate_parts(tmp_path, path, unit, translate=str.upper, batch_rows=100)
    parts = tmp_path / "out" / "_parts" / "docs.parquet"
    (part,) = parts.iterdir()
    table = pq.read_table(part)
    pq.write_table(table.slice(1), part)  # the first segment of d0 is lost
    _, (shard,), columns, _ = discover_shards(str(path), "id", "source", "reference")
    # d0 is translated again
    assert shard_state(resume_context(tmp_path, out, columns, unit), shard) == ShardState(False, {"d1"})
    with pytest.raises(RuntimeError, match="1 of 2 documents have segments missing"):
        commit_shard(shard, str(path), out, columns, output_fields(1, False), (), MetricOptions(), {}, unit)


def test_document_level_scores_normalise_whitespace(tmp_path):
    from sacrebleu.metrics import BLEU

    docs = ["A dog runs.\n\nIt is fast.", "Two cats\n- sleep"]
    refs = ["Ein Hund rennt.  Er ist schnell.", "Zwei Katzen\n- schlafen"]
    path = write_shard(tmp_path, docs, refs)
    unit = DocumentUnit()
    out, _ = translate_parts(tmp_path, path, unit, translate=lambda s: {"A dog runs.": "Ein Hund rennt.",
                                                                        "It is fast.": "Er ist schnell.",
                                                                        "Two cats": "Zwei Katzen",
                                                                        "sleep": "schlafen"}[s])
    _, (shard,), columns, _ = discover_shards(str(path), "id", "source", "reference")
    stats = commit_shard(shard, str(path), out, columns, output_fields(1, False), ("bleu",), MetricOptions(), {}, unit)
    hyps = ["Ein Hund rennt. Er ist schnell.", "Zwei Katzen - schlafen"]
    expected = BLEU().corpus_score(hyps, [[" ".join(r.split()) for r in refs]])
    assert expected.score == pytest.approx(100.0)
    from pipeline.scoring.metrics import make_metrics, score_from_stats

    assert score_from_stats(make_metrics()["bleu"], stats["metrics"]["bleu"]) == pytest.approx(expected.score)


def test_a_document_with_a_sentence_cut_at_the_length_limit_is_length_limit(tmp_path):
    """The shipped model's loops (issue 31) inside documents, decoded by the stages without Ray: a document
    whose one sentence was cut at the length limit is length_limit, whatever else was cut, and counted so."""
    from model.decoding import DecodeConfig
    from pipeline.stages import Detokenize, Tokenize, Translator
    from tests.conftest import ROOT

    shipped = os.path.join(ROOT, "models", "multi30k-en-de")
    count = " ".join(str(i) for i in range(1, 21))  # (a line of numbers alone would be copied verbatim)
    docs = [f"A man rides a bike.\n\nNumbers: {count}.", "Two dogs play in the snow. A girl laughs.",
            "Oooooooooooooooooooooh! " + " ".join(["word"] * 1500)]  # a sentence cut at spaces, and a loop
    path = write_shard(tmp_path, docs)
    tokenize = Tokenize(shipped, "source", 256, "split", {})
    translator = Translator(shipped, DecodeConfig(beam_size=2), "fp32", 24000, 1, {})
    detokenize = Detokenize(shipped, 1, False, {})
    unit = DocumentUnit(write_segments=True)
    out, _ = translate_parts(tmp_path, path, unit, None, batch_rows=50,
                             stages=lambda segments: detokenize(translator(tokenize(segments))))
    _, (shard,), columns, _ = discover_shards(str(path), "id", "source", "reference")
    stats = commit_shard(shard, str(path), out, columns, output_fields(1, False, True), (), MetricOptions(), {}, unit)
    rows = pq.read_table(tmp_path / "out" / "translations" / "docs.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["length_limit", "ok", "length_limit"]
    assert rows[0]["translation"].startswith("Ein Mann fährt auf einem Fahrrad.\n\nZahlreiche 8 8 8")  # kept
    assert stats["status"] == {"length_limit": 2, "ok": 1}


def test_document_status_order():
    from pipeline.documents.units import document_status

    assert document_status("x", ["ok", "length_limit", "split"], cut=True) == "length_limit"
    assert document_status("x", ["truncated", "length_limit"]) == "length_limit"
    assert document_status("x", ["truncated", "ok"]) == "truncated"
    assert document_status("x", ["unsupported_language", "length_limit"]) == "unsupported_language"
    assert document_status("  ", []) == "empty"
    assert document_status("x", ["ok", "ok"]) == "ok" and document_status("x", ["ok"], cut=True) == "split"




def test_per_sentence_options_are_refused_with_documents():
    from model.decoding import DecodeConfig
    from pipeline.settings import TranslationSettings

    with pytest.raises(ValueError, match="--unit sentence"):
        TranslationSettings(unit="document", decode=DecodeConfig(beam_size=2, nbest=2))
    with pytest.raises(ValueError, match="--write-segments needs --unit document"):
        TranslationSettings(write_segments=True)
    with pytest.raises(ValueError, match="--format html|markdown needs --unit document"):
        TranslationSettings(format="html")


def test_marked_up_documents_through_parts_and_commit_and_an_unparsable_one_comes_back_unchanged(
        tmp_path, monkeypatch):
    from pipeline.documents.markup import layout as markup_layout

    monkeypatch.setattr(markup_layout, "MAX_MARKUP_CHARS", 200)
    docs = ['<p>A dog <a href="/d">runs</a>.</p>\r\n<pre> x </pre>', "<p>" + "Too long. " * 30 + "</p>", "", None,
            "<!-- only markup --><br>"]
    path = write_shard(tmp_path, docs)
    unit = DocumentUnit(write_segments=True, format="html")
    out, segments = translate_parts(tmp_path, path, unit, translate=lambda s: s.upper())
    assert segments.column("source").to_pylist() == ["A dog runs.", "runs"]
    _, (shard,), columns, _ = discover_shards(str(path), "id", "source", "reference")
    commit_shard(shard, str(path), out, columns, output_fields(1, False, True), (), MetricOptions(), {}, unit)
    rows = pq.read_table(tmp_path / "out" / "translations" / "docs.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["ok", "unparsable", "empty", "empty", "ok"]
    assert rows[0]["translation"] == '<p>A DOG <a href="/d">RUNS</a>.</p>\r\n<pre> x </pre>'
    assert rows[1]["translation"] == docs[1] and rows[4]["translation"] == docs[4]


def test_a_loop_in_a_marks_extra_segment_is_not_the_documents_status(tmp_path):
    """A mark's words translated alone only place its tags: a loop there (a caption model on a lone word) is
    not in the document, so the document is ok."""
    path = write_shard(tmp_path, ['<p>A dog <a href="/d">runs</a>.</p>'])
    unit = DocumentUnit(format="html")

    def stages(segments):
        sources = segments.column("source").to_pylist()
        return pa.table({"translation": [s.upper() for s in sources],
                         "status": ["length_limit" if s == "runs" else "ok" for s in sources]})

    out, _ = translate_parts(tmp_path, path, unit, None, stages=stages)
    _, (shard,), columns, _ = discover_shards(str(path), "id", "source", "reference")
    commit_shard(shard, str(path), out, columns, output_fields(1, False, False), (), MetricOptions(), {}, unit)
    rows = pq.read_table(tmp_path / "out" / "translations" / "docs.parquet").to_pylist()
    assert rows[0]["status"] == "ok" and rows[0]["translation"] == '<p>A DOG <a href="/d">RUNS</a>.</p>'


def test_the_split_stage_flags_tagged_sentences_and_their_alignment_places_the_tags(tmp_path):
    """Sentences with inline tags are flagged for the model actor (it returns their cross-attention); the word
    alignment the part files carry places the tags, over what the mark's extra segment would say."""
    from pipeline.columns import ALIGN, MARKED

    path = write_shard(tmp_path, ['<p>A dog <a href="/d">runs</a>.</p>', "<p>No tags.</p>"])
    unit = DocumentUnit(format="html")
    said = {"A dog runs.": "Ein Hund rennt.", "runs": "Hund", "No tags.": "Keine Tags."}

    def stages(segments):
        assert segments.column(MARKED).to_pylist() == [True, False, False]
        sources = segments.column("source").to_pylist()
        return pa.table({"translation": [said[s] for s in sources], "status": ["ok"] * len(sources),
                         ALIGN: pa.array([[0, 1, 2] if s == "A dog runs." else None for s in sources],
                                         pa.list_(pa.int32()))})

    out, _ = translate_parts(tmp_path, path, unit, None, stages=stages)
    _, (shard,), columns, _ = discover_shards(str(path), "id", "source", "reference")
    commit_shard(shard, str(path), out, columns, output_fields(1, False, False), (), MetricOptions(), {}, unit)
    rows = pq.read_table(tmp_path / "out" / "translations" / "docs.parquet").to_pylist()
    assert [r["translation"] for r in rows] == ['<p>Ein Hund <a href="/d">rennt</a>.</p>', "<p>Keine Tags.</p>"]
