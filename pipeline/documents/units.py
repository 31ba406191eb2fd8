"""What one input row is: a sentence, or a document cut into segments (`--unit`).

The model actors always see segments: in document mode an extra stage cuts every document into
segments before tokenization, so segments of many documents share the same length-sorted
token-budget batches, and one long document never pins one actor. What differs between the units
is only at the edges, and lives here:

    explode(table)       the stage before tokenization (sentence mode: none)
    done_ids(parts)      ids of rows that are finished in the part files (resume)
    rows_done(part)      how many input rows a part file finishes (the driver commits a shard once all are)
    matches_input(...)   whether part rows are still what the input holds (parts of another input version)
    assemble(...)        part rows back into one output row per input row, in input order
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.columns import ALIGN, DETECTED, MARKED, NSEG, SEG, STATUS, RowStatus
from pipeline.documents.splitting import split_document
from pipeline.inputs import compare_rows, decode_texts, same_values
from pipeline.languages import majority_language
from pipeline.settings import LanguageChoice


def _dedupe_by_position(merged: pa.Table, positions: pa.Array) -> tuple[pa.Table, np.ndarray]:
    """Rows sorted by `positions`; a position seen twice (a retried batch wrote a row twice) kept once."""
    order = pc.sort_indices(positions)
    merged, pos = merged.take(order), positions.take(order).to_numpy(zero_copy_only=False)
    keep = np.ones(len(pos), dtype=bool)
    keep[1:] = pos[1:] != pos[:-1]
    if not keep.all():
        merged, pos = merged.filter(pa.array(keep)), pos[keep]
    return merged, pos


@dataclass(frozen=True)
class SentenceUnit:
    """Each row's source is one sentence (or a short text); part rows carry every input column."""

    name = "sentence"

    def explode(self, id_column: str, source_column: str, languages=None):
        return None

    def done_ids(self, parts: pa.Table, id_column: str) -> set:
        return set(parts.column(id_column).to_pylist())

    def rows_done(self, part: pa.Table) -> Fraction:
        return Fraction(part.num_rows)

    def part_columns(self, id_column: str) -> list[str]:
        return [id_column]

    def matches_input(self, parts: pa.Table, inputs: pa.Table, columns, languages=()) -> np.ndarray:
        """Per part row: its id is in the input with the same source text and language columns."""
        _, same, _ = compare_rows(parts, inputs, columns.id, [columns.source, *languages])
        return same

    def input_columns(self, columns) -> list[str]:
        return [columns.id]  # the part rows carry every other input column

    def empty_parts(self, schema: pa.Schema, id_column: str) -> pa.Table:
        return schema.empty_table()

    def assemble(self, shard_name: str, inputs: pa.Table, merged: pa.Table, id_column: str,
                 source_column: str) -> pa.Table:
        positions = pc.index_in(merged.column(id_column), value_set=inputs.column(id_column))
        if positions.null_count:
            raise RuntimeError(f"shard {shard_name}: {positions.null_count} translated rows have ids not in the "
                               "input")
        merged, _ = _dedupe_by_position(merged, positions)
        if merged.num_rows != inputs.num_rows:
            raise RuntimeError(f"shard {shard_name}: {inputs.num_rows - merged.num_rows} of {inputs.num_rows} rows "
                               "missing after translation; a re-run translates them")
        return merged

    def scored_texts(self, table: pa.Table, reference_column: str) -> tuple[list[str], list[str]]:
        hyps = [h or "" for h in table.column("translation").to_pylist()]
        return hyps, [r or "" for r in decode_texts(table.column(reference_column))[0]]


@dataclass(frozen=True)
class DocumentUnit:
    """Each row's source is a document; part rows are its translated segments (id, segment index)."""

    languages: LanguageChoice = LanguageChoice()
    write_segments: bool = False
    format: str = "text"  # text, html or markdown (--format): which reader cuts a document into segments
    name = "document"

    def layout(self, text: str | None, lang: str):
        """The document's layout (segments, and how translations go back in), by its format."""
        return _READERS[self.format](text, lang)

    def _split_languages(self, table: pa.Table) -> list[str]:
        """Each document's language for sentence splitting (sentencex takes the code before any "_"). With
        --source-lang auto and no language column, the fallback language, else English rules: documents are
        cut before their segments' languages are identified (the cut must be the same at the commit)."""
        return [code.strip("_").split("_")[0] or "en" for code in self.languages.of_rows(table)[0]]

    def explode(self, id_column: str, source_column: str, languages=None):
        carried = self.languages.columns  # each segment keeps its document's language pair

        def split_documents(table: pa.Table) -> pa.Table:
            """Ray Data stage: one row per segment to translate (path, id, __seg, __nseg, source, languages;
            --format html|markdown: __marked, the sentences whose inline tags an alignment places)."""
            rows: list[int] = []
            segs, nsegs, texts, marked = [], [], [], []
            for r, (text, lang) in enumerate(zip(decode_texts(table.column(source_column))[0],
                                                 self._split_languages(table), strict=True)):
                layout = self.layout(text, lang)
                segments = layout.segments
                rows += [r] * len(segments)
                segs += range(len(segments))
                nsegs += [len(segments)] * len(segments)
                texts += segments
                if self.format != "text":
                    marked += layout.marked
            take = pa.array(rows, pa.int64())
            out = {"path": table.column("path").take(take), id_column: table.column(id_column).take(take),
                   SEG: pa.array(segs, pa.int32()), NSEG: pa.array(nsegs, pa.int32()),
                   source_column: pa.array(texts, pa.string())}
            out.update({c: table.column(c).take(take) for c in carried if c not in out})
            if self.format != "text":
                out[MARKED] = pa.array(marked, pa.bool_())
            return pa.table(out)

        return split_documents

    def part_columns(self, id_column: str) -> list[str]:
        return [id_column, SEG, NSEG]

    def matches_input(self, parts: pa.Table, inputs: pa.Table, columns, languages=()) -> np.ndarray:
        """Per part row (a segment): its document is in the input, with the same language columns, and is
        cut into the same segments, this one among them at its index."""
        where = pc.index_in(parts.column(columns.id), value_set=inputs.column(columns.id))
        found = np.asarray(pc.is_valid(where).to_numpy(zero_copy_only=False), dtype=bool)
        where = np.asarray(pc.fill_null(where, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        if not inputs.num_rows:
            return found
        texts, split_langs = inputs.column(columns.source).to_pylist(), self._split_languages(inputs)
        segments: dict[int, list[str]] = {}
        ok = found.copy()
        rows = zip(where, parts.column(SEG).to_pylist(), parts.column(NSEG).to_pylist(),
                   parts.column(columns.source).to_pylist(), strict=True)
        for r, (doc, seg, nseg, text) in enumerate(rows):
            if ok[r]:
                if doc not in segments:
                    segments[doc] = self.layout(texts[doc], split_langs[doc]).segments
                ok[r] = nseg == len(segments[doc]) and seg < nseg and segments[doc][seg] == text
        for column in languages:
            ok &= same_values(parts.column(column), inputs.column(column).take(pa.array(where)))
        return ok

    def input_columns(self, columns) -> None:
        return None  # every input column: the part rows hold only segments

    def empty_parts(self, schema: pa.Schema, id_column: str) -> pa.Table:
        """No part file at all (every document empty or verbatim): no segment rows."""
        return pa.schema([schema.field(id_column), pa.field(SEG, pa.int32()), pa.field("translation", pa.string()),
                          pa.field(STATUS, pa.string())]).empty_table()

    def done_ids(self, parts: pa.Table, id_column: str) -> set:
        """Documents whose every segment is in the part files (a partly written one is translated again)."""
        seen: dict = {}
        for doc_id, seg, nseg in zip(parts.column(id_column).to_pylist(), parts.column(SEG).to_pylist(),
                                     parts.column(NSEG).to_pylist(), strict=True):
            seen.setdefault(doc_id, (nseg, set()))[1].add(seg)
        return {doc_id for doc_id, (nseg, segs) in seen.items() if len(segs) == nseg}

    def rows_done(self, part: pa.Table) -> Fraction:
        """Each segment finishes its share of a document (1/its segment count): exact, whichever batches
        a document's segments travel in. (A document with no segments at all never shows up here.)"""
        counts = pc.value_counts(part.column(NSEG)).to_pylist() if part.num_rows else []
        return sum((Fraction(c["counts"], c["values"]) for c in counts), Fraction(0))

    def assemble(self, shard_name: str, inputs: pa.Table, merged: pa.Table, id_column: str,
                 source_column: str) -> pa.Table:
        """Every input document, its segments' translations put back into its own layout."""
        ids = inputs.column(id_column)
        positions = pc.index_in(merged.column(id_column), value_set=ids)
        if positions.null_count:
            raise RuntimeError(f"shard {shard_name}: {positions.null_count} translated segments have ids not in "
                               "the input")
        # One key per (document, segment): documents in input order, segments in document order.
        seg = merged.column(SEG).to_numpy(zero_copy_only=False).astype(np.int64)
        key = pa.array(positions.to_numpy(zero_copy_only=False).astype(np.int64) * (1 << 32) + seg)
        merged, keys = _dedupe_by_position(merged, key)
        doc_of = keys >> 32
        bounds = np.searchsorted(doc_of, np.arange(inputs.num_rows + 1))
        translated = merged.column("translation").to_pylist()
        # Each segment's word alignment (inline markup, tags.py); none in part files written without it.
        aligned = merged.column(ALIGN).to_pylist() if ALIGN in merged.column_names else None
        seg_status = merged.column(STATUS).to_pylist()
        seg_langs = None
        if self.languages.detect:  # (no part file at all: no segment identified)
            seg_langs = (merged.column(DETECTED).to_pylist() if DETECTED in merged.column_names
                         else [None] * merged.num_rows)
        doc_langs = []
        texts, invalid = decode_texts(inputs.column(source_column))  # a document that is not UTF-8 has no segments
        out_text, out_status, src_segs, tgt_segs = [], [], [], []
        missing = 0
        for d, (text, bad, lang) in enumerate(zip(texts, invalid, self._split_languages(inputs), strict=True)):
            layout = self.layout(text, lang)
            lo, hi = bounds[d], bounds[d + 1]
            if hi - lo != len(layout.segments):
                missing += 1
                continue
            segments = translated[lo:hi]
            shown = [st for st, kept in zip(seg_status[lo:hi], layout.shown, strict=True) if kept]
            status = (RowStatus.INVALID_UTF8 if bad else RowStatus.UNPARSABLE if layout.unparsable
                      else document_status(text, shown, layout.cut))
            untranslated = status in (RowStatus.EMPTY, RowStatus.UNSUPPORTED_LANGUAGE, RowStatus.UNKNOWN_LANGUAGE)
            if seg_langs is not None:  # the document's: the language of most of its identified characters
                doc_langs.append(majority_language([x or "" for x in seg_langs[lo:hi]],
                                                   [len(x) for x in layout.segments]) or None)
            out_text.append(None if bad else "" if untranslated else self._fill(layout, segments, aligned, lo, hi))
            out_status.append(status)
            src_segs.append(layout.segments)
            tgt_segs.append(segments)
        if missing:
            raise RuntimeError(f"shard {shard_name}: {missing} of {inputs.num_rows} documents have segments missing "
                               "after translation; a re-run translates them")
        out = inputs.append_column("translation", pa.array(out_text, pa.string()))
        out = out.append_column(STATUS, pa.array(out_status, pa.string()))
        if seg_langs is not None:
            out = out.append_column(DETECTED, pa.array(doc_langs, pa.string()))
        if self.write_segments:
            out = out.append_column("source_segments", pa.array(src_segs, pa.list_(pa.string())))
            out = out.append_column("target_segments", pa.array(tgt_segs, pa.list_(pa.string())))
        return out

    def _fill(self, layout, segments: list, aligned: list | None, lo: int, hi: int) -> str:
        texts = [s or "" for s in segments]
        if aligned is None or self.format == "text":
            return layout.fill(texts)
        return layout.fill(texts, aligned[lo:hi])

    def scored_texts(self, table: pa.Table, reference_column: str) -> tuple[list[str], list[str]]:
        """Document-level scoring: each document one segment, whitespace normalised (line breaks and
        indentation are layout, not words)."""
        def norm(texts):
            return [" ".join((t or "").split()) for t in texts]

        return norm(table.column("translation").to_pylist()), norm(decode_texts(table.column(reference_column))[0])


def document_status(text: str | None, segment_status: list[str], cut: bool = False) -> str:
    """empty: nothing to translate in the document at all; length_limit: a segment's translation was cut at
    the length limit; split/truncated: a segment had to be cut.

    One segment at the length limit makes the document length_limit: the document's translation holds that
    segment's cut translation (mostly a loop, issue 31) and nothing else in the output shows it, while
    that a segment was split or truncated follows from the source's length. (unsupported_language,
    unknown_language and empty come first: those documents have no translation at all. A document whose
    every segment is in the target language is same_language; one with some segments in it is translated
    around them, those copied.)
    """
    if not text or not text.strip():
        return RowStatus.EMPTY
    for status in (RowStatus.UNSUPPORTED_LANGUAGE, RowStatus.UNKNOWN_LANGUAGE):
        if status in segment_status:
            return status
    if segment_status and all(s in (RowStatus.SAME_LANGUAGE, RowStatus.EMPTY) for s in segment_status):
        return RowStatus.SAME_LANGUAGE  # nothing in it needed translating (segments in the target language: copied)
    if RowStatus.LENGTH_LIMIT in segment_status:
        return RowStatus.LENGTH_LIMIT
    if RowStatus.TRUNCATED in segment_status:
        return RowStatus.TRUNCATED
    return RowStatus.SPLIT if cut or RowStatus.SPLIT in segment_status else RowStatus.OK


def _split_html(text: str | None, lang: str):
    from pipeline.documents.markup import split_html  # html.parser, imported where documents are HTML

    return split_html(text, lang)


def _split_markdown(text: str | None, lang: str):
    from pipeline.documents.markup import split_markdown  # markdown-it, imported where documents are Markdown

    return split_markdown(text, lang)


# --format -> what cuts a document into segments (and puts translations back).
_READERS = {"text": split_document, "html": _split_html, "markdown": _split_markdown}

SENTENCES = SentenceUnit()


def unit_for(settings) -> SentenceUnit | DocumentUnit:
    """The unit a run's TranslationSettings ask for."""
    units = {"sentence": lambda: SentenceUnit(),
             "document": lambda: DocumentUnit(settings.languages, settings.write_segments, settings.format)}
    return units[settings.unit]()
