"""A marked-up document as a layout: verbatim source text, and *runs* of inline content whose sentences are
translated, with their inline markup put back (tags.py). The HTML and Markdown readers (html.py,
markdown.py) cut a document into pieces of raw source; everything here works on those pieces, whatever the
format.

A run is the inline content of one block (a paragraph, a heading, a table cell, a list item's text). Its
pieces, concatenated, are its source bytes; each has the plain text the model sees ("" for tags). The
run's plain text is cut into sentences (sentencex, as plain documents); a sentence is one segment unless
an inline element starts or ends inside it and reaches into the next, when the two are one segment (a
sentence with a link is translated as one sentence, not in pieces). Elements around whole sentences keep
their place between the segments.

A segment the model gave back unchanged keeps its source bytes (entities, line breaks, tags, all of it),
so a round trip through an identity translator is byte for byte. Where inline markup is not well nested
(`<b><i>x</b></i>`, a tag left open) a run is translated in *pieces*: the text between two tags is
translated on its own and every tag stays where it was.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from pipeline.documents.markup.tags import ALONE_WORDS, Mark, place, render
from pipeline.documents.splitting import MAX_CHARS

TEXT, OPEN, CLOSE, VOID, OPAQUE = "text", "open", "close", "void", "opaque"


def has_letter(text: str) -> bool:
    return any(unicodedata.category(c).startswith("L") for c in text)


class Attr(NamedTuple):
    """A translatable attribute value inside a tag's raw markup: raw[start:end], whose text is `plain`."""

    start: int
    end: int
    plain: str
    quote: str = '"'


class Piece(NamedTuple):
    """Raw source and the plain text the model sees of it. TEXT pieces whose plain equals their raw may be cut
    anywhere; others (an entity, a run of whitespace, a line break) are indivisible. `name` pairs OPEN and
    CLOSE pieces; OPAQUE pieces are whole elements kept as they are (the model sees their text)."""

    raw: str
    plain: str = ""
    kind: str = TEXT
    name: str = ""
    attrs: tuple[Attr, ...] = ()


def escape_attr(text: str, quote: str) -> str:
    text = text.replace("&", "&amp;")
    return text.replace('"', "&quot;") if quote == '"' else text.replace("'", "&#39;") if quote == "'" else text


class AttrPart:
    """A tag outside any run (a block element's, an image between blocks) with attributes to translate."""

    def __init__(self, piece: Piece):
        self.piece = piece
        self.sources = [a.plain for a in piece.attrs]

    @property
    def shown(self) -> list[bool]:
        return [True] * len(self.sources)

    @property
    def marked(self) -> list[bool]:
        return [False] * len(self.sources)

    def render(self, translations: list[str], alignments=None) -> str:
        return tag_raw(self.piece, iter(translations))


def tag_raw(piece: Piece, translations) -> str:
    """A tag's raw markup with its translatable attribute values replaced by the next translations."""
    if not piece.attrs:
        return piece.raw
    out, pos = [], 0
    for attr in piece.attrs:
        t = next(translations)
        out += [piece.raw[pos:attr.start],
                piece.raw[attr.start:attr.end] if t == attr.plain else escape_attr(t, attr.quote)]
        pos = attr.end
    return "".join(out) + piece.raw[pos:]


@dataclass
class _Segment:
    pieces: list[int]  # indices of the run's pieces it holds, contiguous
    source: str  # plain text the model translates
    marks: list[Mark] = field(default_factory=list)  # the forest of its inline elements
    alone: list[str] = field(default_factory=list)  # its marks' texts, translated alone (tags.py)


class RunPart:
    """One run: its segments, its marks' texts translated alone, and its inline tags' attributes."""

    def __init__(self, pieces: list[Piece], owner: list[int], segments: list[_Segment],
                 escape: Callable[[str], str]):
        self.pieces, self.owner, self.segs, self.escape = pieces, owner, segments, escape
        self.sources = ([s.source for s in segments] + [a for s in segments for a in s.alone]
                        + [a.plain for p in pieces for a in p.attrs])

    @property
    def shown(self) -> list[bool]:
        """Sentences and attributes are in the document; the marks' extra segments only place their tags."""
        extra = sum(len(s.alone) for s in self.segs)
        return [True] * len(self.segs) + [False] * extra + [True] * (len(self.sources) - len(self.segs) - extra)

    @property
    def marked(self) -> list[bool]:
        """Sentences with inline elements that wrap words: their translations' alignment places the tags."""
        wraps = [any(m.kind == "wrap" for m in _all_marks(s.marks)) for s in self.segs]
        return wraps + [False] * (len(self.sources) - len(self.segs))

    def render(self, translations: list[str], alignments: list | None = None) -> str:
        n = len(self.segs)
        main, rest = translations[:n], iter(translations[n:])
        aligns = list(alignments[:n]) if alignments is not None else [None] * n
        alone = [[next(rest) for _ in s.alone] for s in self.segs]
        raws = [tag_raw(p, rest) for p in self.pieces]
        out, done = [], set()
        for i, owner in enumerate(self.owner):
            if owner < 0:
                out.append(raws[i])
            elif owner not in done:
                done.add(owner)
                out.append(self._segment(self.segs[owner], main[owner], alone[owner], raws, aligns[owner]))
        return "".join(out)

    def _segment(self, seg: _Segment, translation: str, alone: list[str], raws: list[str], align=None) -> str:
        if translation == seg.source:  # copied by the model (or an identity translator): the source bytes
            return "".join(raws[i] for i in seg.pieces)
        _set_raws(seg.marks, raws)
        place(seg.source, translation, seg.marks, alone, align)
        # Whitespace the segment holds before its first word and after its last stays outside its markup.
        edge = [i for i in seg.pieces if self.pieces[i].plain.strip()]
        lead = "".join(raws[i] for i in seg.pieces if i < edge[0] and self.pieces[i].kind == TEXT)
        trail = "".join(raws[i] for i in seg.pieces if i > edge[-1] and self.pieces[i].kind == TEXT)
        return lead + render(translation, seg.marks, self.escape) + trail


def _all_marks(marks: list[Mark]):
    for m in marks:
        yield m
        yield from _all_marks(m.children)


def _set_raws(marks: list[Mark], raws: list[str]) -> None:
    """Marks hold piece indices until rendering; their raw markup (attributes translated) is set here."""
    for m in marks:
        o, c = m.open_piece, m.close_piece
        m.open = raws[o]
        m.close = raws[c] if c >= 0 else ""
        _set_raws(m.children, raws)


def _plain_offsets(pieces: list[Piece]) -> tuple[str, list[str], list[int]]:
    """The run's plain text (runs of whitespace collapsed to one space), each piece's plain and its offset."""
    plains, starts, text = [], [], []
    length = 0
    ends_space = True
    for p in pieces:
        plain = p.plain if p.kind in (TEXT, OPAQUE) else ""
        if plain and plain.isspace():
            plain = "" if ends_space else " "
        starts.append(length)
        plains.append(plain)
        text.append(plain)
        length += len(plain)
        if plain:
            ends_space = plain[-1].isspace()
    return "".join(text), plains, starts


def _sentences(text: str, lang: str) -> tuple[list[tuple[int, int]], bool]:
    """(start, end) of each sentence of `text`, stripped, and whether one longer than MAX_CHARS was cut (at
    spaces)."""
    from sentencex import segment

    spans, pos, cut = [], 0, False
    for sentence in segment(lang, text):
        core = sentence.strip()
        if not core:
            continue
        at = text.find(core, pos)
        if at < 0:
            continue
        a, pos = at, at + len(core)
        while pos - a > MAX_CHARS:
            at = text.rfind(" ", a + 1, a + MAX_CHARS)
            at = at if at > a else a + MAX_CHARS
            spans.append((a, at))
            a, cut = at + (text[at] == " "), True
        spans.append((a, pos))
    return spans, cut


def build_run(pieces: list[Piece], lang: str, escape: Callable[[str], str]) -> tuple[list, bool]:
    """A run's parts (verbatim strings and RunParts) and whether a sentence was cut at MAX_CHARS."""
    text, plains, starts = _plain_offsets(pieces)
    if not has_letter("".join(p for p, q in zip(plains, pieces, strict=True) if q.kind == TEXT)):
        return _verbatim(pieces), False
    pairs = _pairs(pieces)
    if pairs is None or _depth(pieces) > MAX_INLINE_DEPTH:
        return _in_pieces(pieces, lang, escape)
    spans, cut = _sentences(text, lang)
    pieces, plains, starts = _split_literals(pieces, plains, starts, spans)
    pairs = _pairs(pieces)
    segments = _merge(spans, pieces, plains, starts, pairs)
    if any(b - a > MAX_CHARS for a, b in segments):
        return _in_pieces(pieces, lang, escape)
    owner = _owners(pieces, plains, starts, segments, pairs)
    if owner is None:
        return _in_pieces(pieces, lang, escape)
    held: dict[int, list[int]] = {}
    for i, o in enumerate(owner):
        held.setdefault(o, []).append(i)
    segs = []
    for k, (a, b) in enumerate(segments):
        idx = held.get(k, [])
        seg = _Segment(idx, text[a:b])
        seg.marks = _marks(pieces, plains, starts, idx, pairs, a, seg)
        if not has_letter("".join(plains[i] for i in idx if pieces[i].kind == TEXT)):
            owner = [-1 if o == k else o for o in owner]  # all of it inside opaque elements: kept as is
        segs.append(seg)
    # Renumber the segments that kept text.
    keep = sorted({o for o in owner if o >= 0})
    renumber = {old: new for new, old in enumerate(keep)}
    owner = [renumber.get(o, -1) for o in owner]
    segs = [segs[k] for k in keep]
    part = RunPart(pieces, owner, segs, escape)
    if not part.sources:
        return _verbatim(pieces), cut
    return [part], cut


def _verbatim(pieces: list[Piece]) -> list:
    """Pieces kept as they are, except translatable attributes of their tags."""
    return [AttrPart(p) if p.attrs else p.raw for p in pieces]


def _in_pieces(pieces: list[Piece], lang: str, escape) -> tuple[list, bool]:
    """Every tag kept where it is; the text between two tags translated on its own."""
    out, stretch, cut = [], [], False
    for p in pieces + [Piece("", kind=VOID)]:
        if p.kind == TEXT:
            stretch.append(p)
            continue
        if stretch:
            parts, c = build_run(stretch, lang, escape)
            out += parts
            cut |= c
            stretch = []
        out += _verbatim([p])
    return out, cut


MAX_INLINE_DEPTH = 32  # inline elements nested deeper: the run is translated in pieces (placement recurses)


def _depth(pieces: list[Piece]) -> int:
    depth = deepest = 0
    for p in pieces:
        depth += (p.kind == OPEN) - (p.kind == CLOSE)
        deepest = max(deepest, depth)
    return deepest


def _pairs(pieces: list[Piece]) -> dict[int, int] | None:
    """OPEN piece index -> its CLOSE's; None where the run's inline markup is not well nested."""
    pairs, stack = {}, []
    for i, p in enumerate(pieces):
        if p.kind == OPEN:
            stack.append(i)
        elif p.kind == CLOSE:
            if not stack or pieces[stack[-1]].name != p.name:
                return None
            pairs[stack.pop()] = i
    return None if stack else pairs


def _split_literals(pieces, plains, starts, spans):
    """Literal text pieces cut where a sentence starts or ends inside them."""
    cuts = sorted({x for span in spans for x in span})
    out_p, out_pl, out_s = [], [], []
    for p, plain, s in zip(pieces, plains, starts, strict=True):
        inside = ([c - s for c in cuts[bisect_right(cuts, s):bisect_left(cuts, s + len(plain))]]
                  if p.kind == TEXT and p.raw == p.plain and len(plain) > 1 else [])
        if not inside:
            out_p.append(p)
            out_pl.append(plain)
            out_s.append(s)
            continue
        bounds = [0, *inside, len(plain)]
        for a, b in zip(bounds, bounds[1:], strict=False):
            if b > a:
                out_p.append(Piece(p.raw[a:b], plain[a:b], p.kind, p.name, p.attrs))
                out_pl.append(plain[a:b])
                out_s.append(s + a)
    return out_p, out_pl, out_s


class _Spans:
    """Sorted, disjoint (start, end) spans of a run's segments, searchable by position."""

    def __init__(self, spans: list[tuple[int, int]]):
        self.spans = spans
        self.starts, self.ends = [a for a, _ in spans], [b for _, b in spans]

    def reach(self, lo: int, hi: int) -> tuple[int, int, bool]:
        """The segments an element over plain [lo, hi) reaches (first, last; first > last: it lies between
        two) and whether it is around all of them (it then stays between the segments)."""
        k0, k1 = bisect_right(self.ends, lo), bisect_left(self.starts, hi) - 1
        return k0, k1, k0 <= k1 and lo <= self.starts[k0] and hi >= self.ends[k1]


def _elements(pieces, plains, starts, pairs) -> list[tuple[int, int]]:
    """Plain spans of the run's elements: tag pairs and opaque elements."""
    spans = [(starts[o], starts[c]) for o, c in pairs.items()]
    return spans + [(starts[i], starts[i] + len(plains[i])) for i, p in enumerate(pieces) if p.kind == OPAQUE]


def _merge(spans, pieces, plains, starts, pairs) -> list[tuple[int, int]]:
    """Sentences joined where an inline element starts inside one and ends in another (or splits one from
    outside): such elements need their words in one segment."""
    groups = _Spans(list(spans))
    elements = _elements(pieces, plains, starts, pairs)
    changed = True
    while changed:
        changed = False
        for lo, hi in elements:
            k0, k1, whole = groups.reach(lo, hi)
            if k0 < k1 and not whole:
                spans = groups.spans
                groups = _Spans(spans[:k0] + [(spans[k0][0], spans[k1][1])] + spans[k1 + 1:])
                changed = True
                break
    return groups.spans


def _owners(pieces, plains, starts, segments, pairs) -> list[int] | None:
    """Each piece's segment (-1: between segments, kept as is); None where a segment's pieces are not
    contiguous (the run is then translated in pieces)."""
    closes = {c: o for o, c in pairs.items()}
    spans = _Spans(segments)
    owner = []
    for i, p in enumerate(pieces):
        lo = starts[i]
        if p.kind in (OPEN, CLOSE):
            o, c = (i, pairs[i]) if p.kind == OPEN else (closes[i], i)
            lo, hi = starts[o], starts[c]
        else:
            hi = lo + len(plains[i])
        k0, k1, whole = spans.reach(lo, hi)
        if p.kind == TEXT and hi > lo:
            owner.append(k0 if k0 == k1 and segments[k0][0] <= lo and hi <= segments[k0][1] else -1)
        elif p.kind in (TEXT, VOID) or hi == lo:
            owner.append(k0 if k0 == k1 and segments[k0][0] < lo < segments[k0][1] else -1)
        else:
            owner.append(k0 if k0 == k1 and not whole else -1)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, o in enumerate(owner):
        if o >= 0:
            first.setdefault(o, i)
            last[o] = i
    for k in first:  # whitespace between a segment's pieces is the segment's
        for i in range(first[k], last[k] + 1):
            if owner[i] == -1 and pieces[i].kind == TEXT and not plains[i].strip():
                owner[i] = k
            elif owner[i] != k:
                return None
    return owner


def _marks(pieces, plains, starts, idx, pairs, offset, seg: _Segment) -> list[Mark]:
    """The forest of a segment's inline elements, spans relative to the segment (piece indices for raws)."""
    roots: list[Mark] = []
    stack: list[Mark] = []
    members = set(idx)
    for i in idx:
        p = pieces[i]
        if p.kind == OPEN and pairs[i] in members:
            lo, hi = max(starts[i] - offset, 0), min(starts[pairs[i]] - offset, len(seg.source))
            m = Mark(lo, max(lo, hi), "", "", "wrap")
            m.open_piece, m.close_piece = i, pairs[i]
            text = seg.source[m.start:m.end].strip()
            rest = " ".join((seg.source[:m.start] + " " + seg.source[m.end:]).split())
            if has_letter(text) and has_letter(rest):
                m.alone, m.rest = len(seg.alone), len(text.split()) > ALONE_WORDS
                seg.alone.append(rest if m.rest else text)
            (stack[-1].children if stack else roots).append(m)
            stack.append(m)
        elif p.kind == CLOSE and stack and stack[-1].close_piece == i:
            stack.pop()
        elif p.kind in (VOID, OPAQUE):
            lo = min(max(starts[i] - offset, 0), len(seg.source))
            kind = "void" if p.kind == VOID or not plains[i] else "opaque"
            m = Mark(lo, min(lo + len(plains[i]), len(seg.source)), "", "", kind)
            m.open_piece, m.close_piece = i, -1
            m.spaced = m.kind == "void" and all(0 <= j < len(pieces) and pieces[j].kind == TEXT
                                                and pieces[j].raw.isspace() for j in (i - 1, i + 1))
            (stack[-1].children if stack else roots).append(m)
    return roots


def whitespace_pieces(raw: str, piece_kind: str = TEXT) -> list[Piece]:
    """Literal text cut into words and runs of whitespace (each run one piece the model sees as a space)."""
    return [Piece(m.group(0), " " if m.group(0).isspace() else m.group(0), piece_kind)
            for m in re.finditer(r"\s+|\S+", raw)]


@dataclass(frozen=True)
class MarkupLayout:
    """A marked-up document: verbatim source text and parts to translate (runs, attributes), in order. Same
    interface as splitting.Layout (`segments`, `fill`, `cut`), plus `unparsable`: the document could not be
    read (too large, the parser failed); it has no segments and comes back as it was."""

    parts: tuple
    cut: bool = False
    unparsable: bool = False

    @property
    def segments(self) -> list[str]:
        return [s for p in self.parts if not isinstance(p, str) for s in p.sources]

    @property
    def shown(self) -> list[bool]:
        """Per segment, whether its translation is in the document (a mark's extra segment only places tags:
        its status, a loop on a lone word, is not the document's)."""
        return [x for p in self.parts if not isinstance(p, str) for x in p.shown]

    @property
    def marked(self) -> list[bool]:
        """Per segment, whether it is a sentence whose inline tags an alignment of its translation places
        (the model actor reads its cross-attention, pipeline/stages/translate.py)."""
        return [x for p in self.parts if not isinstance(p, str) for x in p.marked]

    def fill(self, translations: list[str], alignments: list | None = None) -> str:
        """The document with every segment's translation put in its place (in `segments`' order); `alignments`,
        per segment, the source word each word of its translation is aligned to (None: none, tags.py)."""
        want = len(self.segments)
        if len(translations) != want:
            raise ValueError(f"{len(translations)} translations for {want} segments")
        if alignments is not None and len(alignments) != want:
            raise ValueError(f"{len(alignments)} alignments for {want} segments")
        out, pos = [], 0
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
            else:
                n = len(p.sources)
                out.append(p.render(list(translations[pos:pos + n]),
                                    None if alignments is None else list(alignments[pos:pos + n])))
                pos += n
        return "".join(out)


MAX_MARKUP_CHARS = 4_000_000  # larger documents are not read (status unparsable): ~4 MB of a page's source


def read_markup(text: str | None, lang: str, parts_of) -> MarkupLayout:
    """The layout `parts_of(text, lang)` gives, or an unparsable one (no segments) if the document is too large
    or the reader fails on it: a document we cannot read comes back unchanged, never stops the run."""
    if not text or not text.strip():
        return MarkupLayout(())
    if len(text) > MAX_MARKUP_CHARS:
        return MarkupLayout((text,), unparsable=True)
    try:
        parts, cut = parts_of(text, lang)
    except (RecursionError, ValueError, IndexError, KeyError, AssertionError, TypeError):
        return MarkupLayout((text,), unparsable=True)
    layout = MarkupLayout(tuple(parts), cut)
    if layout.fill(layout.segments) != text:  # an identity translation must give the source back
        return MarkupLayout((text,), unparsable=True)
    return layout
