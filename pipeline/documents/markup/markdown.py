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


def _inline_parts(tok, body: str, offsets: list[int], lang: str) -> tuple[list, bool]:
    """The parts of one inline token: runs split at hard breaks, pieces in source order."""
    content = tok.content
    escape = _escaper(tok.children or [])

    def raw(a: int, b: int) -> str:
        return body[offsets[a]:offsets[b]]

    runs: list[list[Piece]] = [[]]
    breaks: list[str] = []
    pending: list[tuple[str, str, int]] = []  # markup tokens between two anchors: (kind, name, length)
    c = 0

    def settle(at: int) -> None:
        """Share content[c:at] among the pending markup tokens."""
        nonlocal c
        gap = at - c
        known = sum(n for _, _, n in pending if n != UNKNOWN)
        unknown = sum(1 for _, _, n in pending if n == UNKNOWN)
        if not pending:
            if content[c:at].strip():
                raise _Unlocated(content)
            runs[-1].extend(whitespace_pieces(raw(c, at)) if at > c else [])
        elif unknown > 1 or (unknown and gap - known < 1) or (not unknown and gap != known):
            raise _Unlocated(content)
        for kind, name, n in pending:
            n = gap - known if n == UNKNOWN else n
            runs[-1].append(Piece(raw(c, c + n), kind=kind, name=name))
            c += n
        pending.clear()
        c = at

    children = list(tok.children or [])
    i = 0
    while i < len(children):
        t = children[i]
        if t.type == "text" and not t.content:
            pass  # what is left of a run of delimiters that all became emphasis
        elif t.type in ("text", "text_special"):
            needle = t.content if t.type == "text" else t.markup
            at = content.find(needle, c)
            if at < 0 or not needle:
                raise _Unlocated(content)
            settle(at)
            if t.type == "text":
                runs[-1].extend(whitespace_pieces(raw(at, at + len(needle))))
            else:
                runs[-1].append(Piece(raw(at, at + len(needle)), t.content))
            c = at + len(needle)
        elif t.type in ("softbreak", "hardbreak"):
            at = content.find("\n", c)
            if at < 0:
                raise _Unlocated(content)
            if t.type == "softbreak":
                settle(at)
                runs[-1].append(Piece(raw(at, at + 1), " "))
            else:  # a hard break ends the run, like <br>: its markup ("  " or "\\") and the line end kept
                mark_at = at - 1 if content[at - 1:at] == "\\" else len(content[:at].rstrip(" "))
                settle(mark_at)
                breaks.append(raw(mark_at, at + 1))
                runs.append([])
            c = at + 1
        elif t.type == "code_inline":
            at = content.find(t.markup, c)
            end = _closing_ticks(content, t.markup, at + len(t.markup)) if at >= 0 else -1
            if end < 0:
                raise _Unlocated(content)
            settle(at)
            shown = t.content if len(t.content) <= MAX_SHOWN else ""
            runs[-1].append(Piece(raw(at, end), shown, OPAQUE))
            c = end
        elif t.type == "html_inline":
            at = content.find(t.content, c)
            if at < 0:
                raise _Unlocated(content)
            settle(at)
            runs[-1].append(_html_piece(raw(at, at + len(t.content))))
            c = at + len(t.content)
        elif t.type == "link_open" and t.markup == "autolink":
            at, end = content.find("<", c), content.find(">", c)
            if at < 0 or end < at:
                raise _Unlocated(content)
            settle(at)
            runs[-1].append(Piece(raw(at, end + 1), "", OPAQUE))  # an address is never translated
            c = end + 1
            while i < len(children) and children[i].type != "link_close":
                i += 1
        elif t.type.endswith("_open") or t.type.endswith("_close"):
            name = t.type.rsplit("_", 1)[0]
            length = 1 if t.type == "link_open" else UNKNOWN if t.type == "link_close" else len(t.markup)
            pending.append((OPEN if t.type.endswith("_open") else CLOSE, name, length))
        elif t.type == "image":
            pending.append((VOID, "img", UNKNOWN))
        else:
            raise _Unlocated(content)
        i += 1
    settle(len(content))
    parts, cut = [], False
    for k, run in enumerate(runs):
        done, c2 = build_run(run, lang, escape)
        parts += [_LineStart(p) if j == 0 and not isinstance(p, str) else p for j, p in enumerate(done)]
        cut |= c2
        if k < len(breaks):
            parts.append(breaks[k])
    return parts, cut


# A translation that starts a line with these would start a block (a heading, a list item, a quote).
_BLOCK_START = re.compile(r"\A(?:#{1,6}(?=\s|\Z)|(\d{1,9})[.)](?=\s|\Z)|[-+*](?=\s|\Z)|>)")


class _LineStart:
    """A run's first part, at the start of a line: a translation that would begin a block there gets a backslash
    ("3\\. Preis", "\\- weniger")."""

    def __init__(self, part):
        self.part, self.sources, self.shown = part, part.sources, part.shown

    def render(self, translations: list[str]) -> str:
        text = self.part.render(translations)
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


