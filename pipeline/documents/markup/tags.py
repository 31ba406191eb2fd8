"""Inline markup put back into a translated sentence: the model sees the sentence without tags, and each
tag pair comes back around the words it wrapped.

Placement, per mark, first that holds (Bergamot/Marian's tag projection through the decoder's
cross-attention, then the Argos Translate approach, then a proportional fallback):

1. an opaque element (inline code, `translate="no"`) whose text the translation copied: that copy;
2. the model's alignment of the translation, where it is sure: `align` gives, per word of the translation,
   the source word that its pieces attend to most (the last decoder layer's cross-attention, heads averaged,
   in a teacher-forced pass over the chosen translation: pipeline/stages/translate.py, detokenize.py); the
   mark goes around the translated words aligned to its words, if some are and they run together (at most
   `ALIGN_STRAY` other words between them); a clause that reaches an edge of its sentence reaches that edge;
3. the mark's own text translated alone (an extra segment of the document, `Mark.alone`), found in the
   sentence's translation: exactly, else the translated words that are forms of its content words
   ("roter Hund" alone finds "roten Hund"; a lone word's loops and short articles are left out);
   For a mark of more than `ALONE_WORDS` words (a clause) the extra segment is instead the sentence without
   them: the translated words that its translation lacks are what the mark's words became (a clause
   translated alone loses its conjunction, "while ..." comes back without "während");
4. the mark's text copied verbatim into the translation (names, numbers);
5. the words at the same relative position (a mark at the start or the end of its sentence stays there).

Measured on 392 tags in validation captions (bench/markup.py): these rules place 96.2% right; without the
alignment (rules 3-5) 88.8%, the alignment alone for every tag 92.9%, proportional position alone 55.1%.

Whatever the alignment says, the output is balanced: a mark is placed inside its parent's span and
outside its placed siblings, shrunk to an empty element (`<b></b>`) if nothing is left, and every mark is
written exactly once, its open and close raw markup as the source had them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from difflib import SequenceMatcher

_WORD = re.compile(r"\S+")
ALONE_WORDS = 3  # marks of up to this many words are translated alone; longer ones by the sentence without them
_EDGE_PUNCT = ".,;:!?\"'()[]«»„“”‚‘’"


@dataclass
class Mark:
    """An inline element of a source sentence: `open`/`close` are its raw markup, [start, end) the span of the
    sentence's plain text it wraps. kind: "wrap" (tags around words), "void" (an element without words:
    `<img>`, a comment), "opaque" (`open` is the whole element, kept as is; the model saw its text)."""

    start: int
    end: int
    open: str
    close: str = ""
    kind: str = "wrap"
    children: list[Mark] = field(default_factory=list)
    open_piece: int = -1  # where its raw markup is among its run's pieces (layout.py)
    close_piece: int = -1
    spaced: bool = False  # a void element that stood apart, space before and after (kept so)
    alone: int = -1  # index of the mark's extra segment among its sentence's (-1: none)
    rest: bool = False  # that segment is the sentence without the mark's words (else: the mark's words alone)
    placed: tuple[int, int] = (0, 0)  # its span in the translation, once placed
    how: str = ""  # which rule placed it (bench/markup.py counts them)


def _norm(text: str) -> str:
    return " ".join(w.strip(_EDGE_PUNCT).lower() for w in text.split() if w.strip(_EDGE_PUNCT))


def _word_spans(text: str) -> list[tuple[int, int]]:
    """Words of `text` with their punctuation at the edges left out (the mark wraps "Hund", not "Hund.")."""
    spans = []
    for m in _WORD.finditer(text):
        a, b = m.start(), m.end()
        while a < b and text[a] in _EDGE_PUNCT:
            a += 1
        while b > a and text[b - 1] in _EDGE_PUNCT:
            b -= 1
        spans.append((a, b) if a < b else (m.start(), m.end()))
    return spans


def _find_copy(needle: str, text: str, lo: int, hi: int, near: float = 0.0,
               taken: tuple = ()) -> tuple[int, int] | None:
    """`needle` in text[lo:hi] as whole words (exactly, else ignoring case), clear of spans already taken; the
    occurrence nearest `near`."""
    needle = needle.strip()
    if not needle:
        return None
    for hay, pin in ((text, needle), (text.casefold(), needle.casefold())):
        if len(hay) != len(text):
            continue  # casefolding changed lengths (ß -> ss): offsets would not hold
        found, at = [], hay.find(pin, lo, hi)
        while at >= 0:
            end = at + len(pin)
            bounded = (at == 0 or not text[at - 1].isalnum()) and (end == len(text) or not text[end].isalnum())
            if bounded and end <= hi and all(end <= a or at >= b or a == b for a, b in taken):
                found.append((at, end))
            at = hay.find(pin, at + 1, hi)
        if found:
            return min(found, key=lambda s: abs(s[0] - near))
    return None


def _similar(a: str, b: str) -> bool:
    """Two words alike enough to be forms of one word: one a prefix of the other ("Hund", "Hunde") or a long
    shared stem ("roter", "roten")."""
    if a == b:
        return True
    short = min(len(a), len(b))
    common = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), short)
    return (common == short and short >= 3) or (common >= 4 and common >= short - 2)


def _content_words(text: str) -> list[str]:
    """The words of a translation alone that say something: repeats dropped (a model loops on a lone word,
    "Ein Hund Hund Hund."), and words of up to 3 letters (articles) when longer ones are there."""
    seen: list[str] = []
    for w in _norm(text).split():
        if w not in seen:
            seen.append(w)
    long = [w for w in seen if len(w) > 3]
    return long or seen


def _best_window(target: str, text: str, words: list[tuple[int, int]], near: float) -> tuple[int, int] | None:
    """The translated words that the mark's text translated alone names: its content words found among `words`
    (as forms of one word), the group of them nearest `near` that names the most; None if none is found."""
    want = _content_words(target)
    if not want or not words:
        return None
    found = []  # (index in words, which wanted word)
    for i, (a, b) in enumerate(words):
        w = _norm(text[a:b])
        hit = next((k for k, x in enumerate(want) if w and _similar(w, x)), None)
        if hit is not None:
            found.append((i, hit))
    if not found:
        return None
    groups = [[found[0]]]  # runs of found words, at most one other word between two
    for f in found[1:]:
        if f[0] - groups[-1][-1][0] <= 2:
            groups[-1].append(f)
        else:
            groups.append([f])
    best = max(groups, key=lambda g: (len({k for _, k in g}), -(g[-1][0] - g[0][0]), -abs(words[g[0][0]][0] - near)))
    return words[best[0][0]][0], words[best[-1][0]][1]


def _left_over(rest: str, text: str, words: list[tuple[int, int]], near: float) -> tuple[int, int] | None:
    """The translated words that the translation of the sentence without the mark's words does not have: the
    longest run of them (nearest `near`), i.e. what the mark's words became."""
    if not words:
        return None
    have = [_norm(text[a:b]) for a, b in words]
    matcher = SequenceMatcher(None, have, _norm(rest).split(), autojunk=False)
    matched = {i for block in matcher.get_matching_blocks() for i in range(block.a, block.a + block.size)}
    runs: list[list[int]] = []
    for i in range(len(words)):
        if i in matched or not have[i]:
            continue
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    if not runs:
        return None
    best = max(runs, key=lambda r: (len(r), -abs(words[r[0]][0] - near)))
    return words[best[0]][0], words[best[-1]][1]


def _to_edges(span: tuple[int, int], source: str, mark: Mark, words: list[tuple[int, int]]) -> tuple[int, int]:
    """A clause that reaches the start (or the end) of its sentence reaches the start (end) of the translation:
    its edge word (a verb at the end, in German) may be one the sentence without it also has."""
    a, b = span
    if not any(c.isalnum() for c in source[:mark.start]):
        a = words[0][0]
    if not any(c.isalnum() for c in source[mark.end:]):
        b = words[-1][1]
    return a, max(a, b)


def _proportional(mark: Mark, source_len: int, text: str, lo: int, hi: int) -> tuple[int, int]:
    """The words at the mark's relative position in the source, within [lo, hi)."""
    words = [w for w in _word_spans(text) if lo <= w[0] and w[1] <= hi]
    if not words:
        return lo, lo
    scale = (hi - lo) / max(1, source_len)
    if mark.kind == "void" or mark.start == mark.end:
        if mark.start == 0:
            return lo, lo
        if mark.start >= source_len:
            return hi, hi
        at = lo + mark.start * scale
        start = min(words, key=lambda w: abs(w[0] - at))[0]
        return start, start
    first = min(range(len(words)), key=lambda i: abs(words[i][0] - (lo + mark.start * scale)))
    last = min(range(first, len(words)), key=lambda i: abs(words[i][1] - (lo + mark.end * scale)))
    if mark.start == 0:
        first = 0
    if mark.end >= source_len:
        last = len(words) - 1
    return words[first][0], words[max(first, last)][1]


def _fit(span: tuple[int, int], lo: int, hi: int, taken: list[tuple[int, int]]) -> tuple[int, int]:
    """`span` clipped to [lo, hi) and to the largest part that overlaps none of `taken` (an empty span next to
    them if nothing is left): placed marks never cross."""
    a, b = max(lo, min(span[0], hi)), max(lo, min(span[1], hi))
    free = [(a, b)]
    for t0, t1 in taken:
        nxt = []
        for f0, f1 in free:
            if t1 <= f0 or t0 >= f1 or t0 == t1:
                nxt.append((f0, f1))
                continue
            if f0 < t0:
                nxt.append((f0, t0))
            if t1 < f1:
                nxt.append((t1, f1))
        free = nxt
    if free:
        return max(free, key=lambda f: f[1] - f[0])
    for t0, t1 in sorted(taken):  # nothing left: empty, just after the mark that took the place
        if t0 <= a < t1 or t0 < b <= t1:
            return t1, t1
    return a, a


ALIGN_STRAY = 1  # an alignment is sure when at most this many other words lie between the words it names


def _aligned(mark: Mark, source: str, words: list[tuple[int, int]], align: list[int] | None,
             lo: int, hi: int) -> tuple[int, int] | None:
    """The translated words (of `words`, within [lo, hi)) aligned to the mark's source words, when the
    alignment is sure: some are, and they run together (at most ALIGN_STRAY others between them); else None.
    align[j]: the source word (index among source.split()) word j of the translation attends to most."""
    if align is None or len(align) != len(words):
        return None
    marked = {i for i, m in enumerate(_WORD.finditer(source)) if mark.start <= m.start() < mark.end}
    hits = [j for j, s in enumerate(align) if s in marked and lo <= words[j][0] and words[j][1] <= hi]
    if not marked or not hits or hits[-1] - hits[0] + 1 - len(hits) > ALIGN_STRAY:
        return None
    return words[hits[0]][0], words[hits[-1]][1]


def place(source: str, translation: str, marks: list[Mark], alone: list[str], align: list[int] | None = None) -> None:
    """Set every mark's `placed` span in `translation` (parents before children, see the module doc); `align`,
    per word of the translation (split at whitespace), the source word the model aligned it with (None: no
    alignment)."""
    words = _word_spans(translation)

    def visit(nodes: list[Mark], lo: int, hi: int) -> None:
        taken: list[tuple[int, int]] = []
        for mark in nodes:
            span, how = None, "proportional"
            inner = [w for w in words if lo <= w[0] and w[1] <= hi]
            near = lo + mark.start * (hi - lo) / max(1, len(source))
            covers = source[:mark.start].strip() == "" and source[mark.end:].strip() == ""
            if mark.kind != "void" and covers:
                span, how = (inner[0][0], inner[-1][1]) if inner else (lo, hi), "whole"
            elif mark.kind == "opaque":
                span, how = _find_copy(source[mark.start:mark.end], translation, lo, hi, near, taken), "copied"
            elif mark.kind == "wrap":
                span, how = _aligned(mark, source, words, align, lo, hi), "aligned"
                if span is None and mark.alone >= 0 and mark.rest and alone[mark.alone].strip():
                    span, how = _left_over(alone[mark.alone], translation, inner, near), "rest"
                elif span is None and mark.alone >= 0 and alone[mark.alone].strip():
                    text = " ".join(dict.fromkeys(alone[mark.alone].split())).rstrip(".!?").strip()
                    span, how = _find_copy(text, translation, lo, hi, near, taken), "alone"
                    span = span or _best_window(text, translation, inner, near)
                if span is None:
                    span, how = _find_copy(source[mark.start:mark.end], translation, lo, hi, near, taken), "copied"
                if span is not None and inner and (how == "rest" or (how == "aligned" and mark.rest)):
                    span = _to_edges(span, source, mark, inner)
            if span is None:
                span, how = _proportional(mark, len(source), translation, lo, hi), "proportional"
            if mark.kind == "void" or (mark.kind == "opaque" and how != "copied"):
                span = (span[0], span[0])  # an element the translation has no words for: inserted, not wrapped
            mark.placed, mark.how = _fit(span, lo, hi, taken), how
            taken.append(mark.placed)
            visit(mark.children, *mark.placed)

    visit(marks, 0, len(translation))


def render(translation: str, marks: list[Mark], escape: Callable[[str], str]) -> str:
    """The translation, escaped, with every mark's raw markup around its placed span (balanced by construction:
    placed spans nest)."""

    def emit(lo: int, hi: int, nodes: list[Mark]) -> str:
        out, pos = [], lo
        for mark in sorted(nodes, key=lambda m: (m.placed[0], m.placed[1] > m.placed[0], m.placed[1])):
            a, b = mark.placed
            out.append(escape(translation[pos:a]))
            if mark.kind == "opaque" and mark.how == "copied":
                out.append(mark.open)  # the element as it was, in place of the copy of its text
            elif mark.kind == "wrap":
                out += [mark.open, emit(a, b, mark.children), mark.close]
            else:
                before = " " if mark.spaced and a == len(translation) and not translation[a - 1:a].isspace() else ""
                after = " " if mark.spaced and a < len(translation) and not translation[a:a + 1].isspace() else ""
                out.append(before + mark.open + mark.close + after)
                out.append(escape(translation[a:b]))
            pos = max(pos, b)
        out.append(escape(translation[pos:hi]))
        return "".join(out)

    return emit(0, len(translation), marks)

