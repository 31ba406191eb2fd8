"""Markdown documents (`--format markdown`): the text of paragraphs, headings, list items, block quotes and
table cells translated; every other byte kept.

The parser: markdown-it-py (CommonMark, with GFM tables and strikethrough). Its block tokens carry source
line maps, its inline tokens do not: each inline token's content is found line by line in its block's
source lines (after the container's `>` and indentation), and its children are found in order in the
content (`text_join` is off, so escapes and entities are tokens of their own whose markup is their source).
The markup between two pieces of text is shared by the emphasis, link and image tokens there: emphasis
markup has a known length, a link's closing `](url "title")` or an image takes the rest. An inline token
we cannot locate keeps its source untranslated.

Kept byte for byte: front matter (`---` or `+++` at the top), headings' and lists' markers, block quotes,
tables' pipes, fenced and indented code, inline code, link and image destinations and titles, autolinks,
hard breaks, the original markers (`*` or `-`, `**` or `__`), link reference definitions; HTML blocks at the
top level go through the HTML reader. Image alt text is not translated.
"""

from __future__ import annotations

import re

from pipeline.documents.markup.html import INLINE, html_parts
from pipeline.documents.markup.layout import (
    CLOSE,
    OPAQUE,
    OPEN,
    VOID,
    Piece,
    build_run,
    whitespace_pieces,
)

_FRONT_MATTER = re.compile(r"\A(?:---|\+\+\+)[ \t]*\r?\n.*?(?:\r?\n|\r)(?:---|\.\.\.|\+\+\+)[ \t]*(?:\r\n|\n|\r|\Z)",
                           re.DOTALL)
_LINES = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+\Z")
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)")
UNKNOWN = -1  # length of a link's closing markup or an image: the rest of the markup between two texts
MAX_SHOWN = 200


def _parser():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    md.disable("text_join")  # escapes and entities stay tokens of their own, with their source as markup
    return md


class _Unlocated(ValueError):
    """An inline token's source could not be found: its block is kept untranslated."""


def markdown_parts(text: str, lang: str) -> tuple[list, bool]:
    front = _FRONT_MATTER.match(text)
    head = front.group(0) if front else ""
    body = text[len(head):]
    lines = _LINES.findall(body)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    cursor: dict[int, int] = {}  # source line -> where the next inline token on it is looked for
    parts: list = [head] if head else []
    pos, cut = 0, False
    for tok in _parser().parse(body):
        if tok.map is None or tok.type not in ("inline", "html_block"):
            continue
        l0, l1 = tok.map
        if tok.type == "html_block":
            raw = body[starts[l0]:starts[min(l1, len(lines))]]
            if raw.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n") != tok.content.rstrip("\n"):
                continue  # inside a container (a quote, a list): kept as is
            done, c = html_parts(raw, lang)
            a, b = starts[l0], starts[l0] + len(raw)
        else:
            try:
                offsets = _content_offsets(tok.content, lines, starts, l0, cursor)
                done, c = _inline_parts(tok, body, offsets, lang)
            except _Unlocated:
                continue
            a, b = offsets[0], offsets[-1]
            cursor[l0 + tok.content.count("\n")] = b - starts[l0 + tok.content.count("\n")]
        if a < pos:
            continue
        parts.append(body[pos:a])
        parts += done
        cut |= c
        pos = b
    parts.append(body[pos:])
    return [p for p in parts if not isinstance(p, str) or p], cut


def _content_offsets(content: str, lines: list[str], starts: list[int], l0: int, cursor: dict) -> list[int]:
    """Source offset of every content offset (and of its end): each content line found in its source line."""
    offsets = []
    for i, piece in enumerate(content.split("\n")):
        n = l0 + i
        if n >= len(lines):
            raise _Unlocated(content)
        at = lines[n].find(piece, cursor.get(n, 0)) if piece else len(lines[n].rstrip("\r\n"))
        if at < 0:
            raise _Unlocated(content)
        offsets += [starts[n] + at + j for j in range(len(piece))]
        offsets.append(starts[n] + at + len(piece))  # the "\n" after it, or the content's end
    return offsets


class _InlineReader:
    """One inline token's children found in order in its content: runs of pieces (a hard break ends one, like
    <br>) and the hard breaks' raw markup between them."""

    def __init__(self, content: str, body: str, offsets: list[int]):
        self.content, self.body, self.offsets = content, body, offsets
        self.runs: list[list[Piece]] = [[]]
        self.breaks: list[str] = []
        self.pending: list[tuple[str, str, int]] = []  # markup tokens between two anchors: (kind, name, length)
        self.c = 0  # where the next anchor is looked for in the content

    def raw(self, a: int, b: int) -> str:
        return self.body[self.offsets[a]:self.offsets[b]]

    def find(self, needle: str) -> int:
        at = self.content.find(needle, self.c) if needle else -1
        if at < 0:
            raise _Unlocated(self.content)
        return at

    def settle(self, at: int) -> None:
        """Share content[c:at] among the pending markup tokens (emphasis markup has its length; a link's
        closing `](...)` or an image takes the rest)."""
        gap, pending = at - self.c, self.pending
        known = sum(n for _, _, n in pending if n != UNKNOWN)
        unknown = sum(1 for _, _, n in pending if n == UNKNOWN)
        if not pending:
            if self.content[self.c:at].strip():
                raise _Unlocated(self.content)
            self.runs[-1].extend(whitespace_pieces(self.raw(self.c, at)) if at > self.c else [])
        elif unknown > 1 or (unknown and gap - known < 1) or (not unknown and gap != known):
            raise _Unlocated(self.content)
        for kind, name, n in pending:
            n = gap - known if n == UNKNOWN else n
            self.runs[-1].append(Piece(self.raw(self.c, self.c + n), kind=kind, name=name))
            self.c += n
        pending.clear()
        self.c = at

    def anchor(self, at: int, end: int, pieces: list[Piece]) -> None:
        """Pieces found at content[at:end], after the markup before them."""
        self.settle(at)
        self.runs[-1].extend(pieces)
        self.c = end

    def read(self, children) -> None:
        i = 0
        while i < len(children):
            t = children[i]
            if t.type == "text" and t.content:
                at = self.find(t.content)
                self.anchor(at, at + len(t.content), whitespace_pieces(self.raw(at, at + len(t.content))))
            elif t.type == "text_special":  # an escape or an entity: its markup is its source
                at = self.find(t.markup)
                self.anchor(at, at + len(t.markup), [Piece(self.raw(at, at + len(t.markup)), t.content)])
            elif t.type == "softbreak":
                at = self.find("\n")
                self.anchor(at, at + 1, [Piece(self.raw(at, at + 1), " ")])
            elif t.type == "hardbreak":  # its markup ("  " or "\\") and the line end are kept between two runs
                at = self.find("\n")
                mark = at - 1 if self.content[at - 1:at] == "\\" else len(self.content[:at].rstrip(" "))
                self.settle(mark)
                self.breaks.append(self.raw(mark, at + 1))
                self.runs.append([])
                self.c = at + 1
            elif t.type == "code_inline":
                at = self.find(t.markup)
                end = _closing_ticks(self.content, t.markup, at + len(t.markup))
                if end < 0:
                    raise _Unlocated(self.content)
                shown = t.content if len(t.content) <= MAX_SHOWN else ""
                self.anchor(at, end, [Piece(self.raw(at, end), shown, OPAQUE)])
            elif t.type == "html_inline":
                at = self.find(t.content)
                self.anchor(at, at + len(t.content), [_html_piece(self.raw(at, at + len(t.content)))])
            elif t.type == "link_open" and t.markup == "autolink":  # an address is never translated
                at = self.find("<")
                end = self.find(">") + 1
                self.anchor(at, end, [Piece(self.raw(at, end), "", OPAQUE)])
                while i < len(children) and children[i].type != "link_close":
                    i += 1
            elif t.type.endswith(("_open", "_close")):
                length = 1 if t.type == "link_open" else UNKNOWN if t.type == "link_close" else len(t.markup)
                self.pending.append((OPEN if t.type.endswith("_open") else CLOSE, t.type.rsplit("_", 1)[0], length))
            elif t.type == "image":
                self.pending.append((VOID, "img", UNKNOWN))
            elif t.type != "text":  # (an empty text token: what is left of delimiters that became emphasis)
                raise _Unlocated(self.content)
            i += 1
        self.settle(len(self.content))


def _inline_parts(tok, body: str, offsets: list[int], lang: str) -> tuple[list, bool]:
    """The parts of one inline token: runs split at hard breaks, pieces in source order."""
    reader = _InlineReader(tok.content, body, offsets)
    reader.read(list(tok.children or []))
    escape = _escaper(tok.children or [])
    parts, cut = [], False
    for k, run in enumerate(reader.runs):
        done, c = build_run(run, lang, escape)
        parts += [_LineStart(p) if j == 0 and not isinstance(p, str) else p for j, p in enumerate(done)]
        cut |= c
        if k < len(reader.breaks):
            parts.append(reader.breaks[k])
    return parts, cut


# A translation that starts a line with these would start a block (a heading, a list item, a quote).
_BLOCK_START = re.compile(r"\A(?:#{1,6}(?=\s|\Z)|(\d{1,9})[.)](?=\s|\Z)|[-+*](?=\s|\Z)|>)")


class _LineStart:
    """A run's first part, at the start of a line: a translation that would begin a block there gets a backslash
    ("3\\. Preis", "\\- weniger")."""

    def __init__(self, part):
        self.part, self.sources, self.shown, self.marked = part, part.sources, part.shown, part.marked

    def render(self, translations: list[str], alignments: list | None = None) -> str:
        text = self.part.render(translations, alignments)
        if translations == self.sources:
            return text
        m = _BLOCK_START.match(text)
        if not m:
            return text
        at = m.end(1) if m.group(1) else 0
        return text[:at] + "\\" + text[at:]


def _closing_ticks(content: str, ticks: str, start: int) -> int:
    """The end of the backtick string that closes a code span opened by `ticks` (same length, not longer)."""
    for m in re.finditer(r"`+", content[start:]):
        if len(m.group(0)) == len(ticks):
            return start + m.end()
    return -1


def _html_piece(raw: str) -> Piece:
    m = _TAG.match(raw)
    if m and m.group(2).lower() in INLINE:
        return Piece(raw, kind=CLOSE if m.group(1) else OPEN, name=m.group(2).lower())
    return Piece(raw, kind=VOID)


_SPECIAL = "\\`*_[]<>|#"


def _escaper(children):
    """Translated text escaped for Markdown: a character the source escaped is escaped as it was; one the source
    had as plain text is written plain; other ASCII punctuation that could start markup gets a backslash."""
    forms = {ch: "\\" + ch for ch in _SPECIAL}
    for t in children:
        if t.type == "text":
            for ch in set(t.content) & set(_SPECIAL):
                forms[ch] = ch
    for t in children:
        if t.type == "text_special" and len(t.content) == 1:
            forms[t.content] = t.markup
    table = str.maketrans(forms)

    def escape(text: str) -> str:
        return text.translate(table)

    return escape


