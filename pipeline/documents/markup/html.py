"""HTML documents (`--format html`): text nodes and the attributes people read are translated, every other
byte is kept.

The parser: Python's own `html.parser.HTMLParser`, as a tokenizer. We splice translations into the source
by offset, so what we need from a parser is where each token starts in the source, and the tokenizer gives
that (`getpos()`), on any input (it never raises on malformed markup: a stray `<` is text, an unclosed
tag at the end is text). lxml (libxml2's HTML parser) builds a tree without source offsets (its
`sourceline` is a line, for elements only), and a tree written out again is not the source: lxml.html
gives back 2 of tests/unit/test_markup_html.py's 7 pages byte for byte (`python bench/markup.py
--parsers`; entities, quoting, implied and moved tags, whitespace differ). html5lib and selectolax were
not measured (not installed here). What we take from HTML5 is the part that matters here: which elements
are inline (phrasing content) and stay inside a sentence, which are raw text (`<script>`, `<style>`),
which are void.

Kept byte for byte: the doctype, comments, every tag with its attributes in their order and quoting,
entities in untranslated text, `<script>`, `<style>`, `<pre>`, `<code>` (and `kbd`, `samp`, `var`),
`<svg>`, `<math>`, `<textarea>`, and anything under `translate="no"` or `class="notranslate"`.
Translated: text, and the values of `title`, `alt`, `placeholder`, `aria-label`.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from pipeline.documents.markup.layout import (
    CLOSE,
    OPAQUE,
    OPEN,
    VOID,
    Attr,
    AttrPart,
    Piece,
    build_run,
    has_letter,
    whitespace_pieces,
)

# Phrasing content that stays inside a sentence (HTML5 §3.2.5.2.5), less what we never translate.
INLINE = frozenset("a abbr acronym b bdi bdo big button cite data del dfn em font i ins label mark nobr q rp rt "
                   "ruby s small span strike strong sub sup time tt u".split())
VOID_INLINE = frozenset("img wbr input".split())  # void phrasing elements: kept inside the sentence, no words
SHOWN = frozenset("code kbd samp var".split())  # inline, kept as is; the model sees their text
HIDDEN = frozenset("script style svg math textarea select iframe object noscript template canvas video audio "
                   "pre".split())  # kept as is, whole, and the model sees nothing of them
VOID_ELEMENTS = frozenset("area base br col embed hr img input link meta param source track wbr".split())
READ_ATTRS = re.compile(r"""\s(title|alt|placeholder|aria-label)\s*=\s*("([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""",
                        re.IGNORECASE)
NO_TRANSLATE = re.compile(r"""\stranslate\s*=\s*["']?no\b|\sclass\s*=\s*["']?[^"'>]*\bnotranslate\b""",
                          re.IGNORECASE)
MAX_SHOWN = 200  # an opaque element's text longer than this is not shown to the model


class _Tokens(HTMLParser):
    """(start offset, kind, tag name) of every token, in order; raw text lies between one start and the next."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=False)
        self.lines = [0] + [m.end() for m in re.finditer("\n", text)]
        self.events: list[tuple[int, str, str]] = []

    def _add(self, kind: str, name: str = "") -> None:
        line, col = self.getpos()
        self.events.append((self.lines[line - 1] + col, kind, name))

    def handle_starttag(self, tag, attrs):
        self._add("start", tag)

    def handle_startendtag(self, tag, attrs):
        self._add("startend", tag)

    def handle_endtag(self, tag):
        self._add("end", tag)

    def handle_data(self, data):
        self._add("data")

    def handle_entityref(self, name):
        self._add("entity")

    def handle_charref(self, name):
        self._add("entity")

    def handle_comment(self, data):
        self._add("comment")

    def handle_decl(self, decl):
        self._add("decl")

    def handle_pi(self, data):
        self._add("decl")

    def unknown_decl(self, data):
        self._add("decl")


def tokens(text: str) -> list[tuple[str, str, str]]:
    """(raw, kind, name) of every token; their raws concatenated are `text`."""
    parser = _Tokens(text)
    parser.feed(text)
    parser.close()
    starts = [0] + [s for s, _, _ in parser.events] + [len(text)]
    kinds = [("data", "")] + [(k, n) for _, k, n in parser.events]
    out = []
    for (kind, name), a, b in zip(kinds, starts, starts[1:], strict=False):
        if b > a:
            out.append((text[a:b], kind, name))
    return out


def _attrs(raw: str) -> tuple[Attr, ...]:
    found = []
    for m in READ_ATTRS.finditer(raw):
        group = 3 if m.group(3) is not None else 4 if m.group(4) is not None else 5
        value = m.group(group)
        if has_letter(value):
            quote = '"' if group == 3 else "'" if group == 4 else ""
            found.append(Attr(m.start(group), m.end(group), html.unescape(value), quote))
    return tuple(found)


def _element_end(toks, i: int, name: str) -> int:
    """Index of the token closing the element opened at token i (nested ones of its name counted)."""
    depth = 0
    for j in range(i, len(toks)):
        _, kind, other = toks[j]
        if other == name and kind == "start":
            depth += 1
        elif other == name and kind == "end":
            depth -= 1
            if depth == 0:
                return j
    return len(toks) - 1


def _shown_text(toks) -> str:
    text = "".join(html.unescape(raw) if kind == "entity" else raw for raw, kind, _ in toks if kind in
                   ("data", "entity"))
    text = " ".join(text.split())
    return text if len(text) <= MAX_SHOWN else ""


def html_parts(text: str, lang: str) -> tuple[list, bool]:
    """The document's parts (verbatim strings, runs and attributes to translate) and whether a sentence was cut."""
    toks = tokens(text)
    escape = _escaper(toks)
    parts: list = []
    run: list[Piece] = []
    cut = False

    def flush() -> None:
        nonlocal run, cut
        if run:
            done, c = build_run(run, lang, escape)
            parts.extend(done)
            cut |= c
            run = []

    i = 0
    while i < len(toks):
        raw, kind, name = toks[i]
        if kind == "data":
            run += whitespace_pieces(raw)
        elif kind == "entity":
            run.append(Piece(raw, html.unescape(raw)))
        elif kind == "comment":
            run.append(Piece(raw, kind=VOID))
        elif kind == "start" and (name in SHOWN or name in HIDDEN or NO_TRANSLATE.search(raw)):
            j = _element_end(toks, i, name) if name not in VOID_ELEMENTS else i
            whole = "".join(t[0] for t in toks[i:j + 1])
            if name in INLINE or name in SHOWN or name in VOID_INLINE:
                shown = _shown_text(toks[i + 1:j]) if name not in HIDDEN else ""
                run.append(Piece(whole, shown, OPAQUE))
            else:  # a block kept whole (<pre>, <div translate="no">, <script>): the run ends before it
                flush()
                parts.append(whole)
            i = j
        elif kind in ("start", "end", "startend") and name in INLINE:
            piece_kind = {"start": OPEN, "end": CLOSE}.get(kind, VOID)
            run.append(Piece(raw, kind=piece_kind, name=name, attrs=_attrs(raw) if kind != "end" else ()))
        elif kind in ("start", "startend") and name in VOID_INLINE:
            run.append(Piece(raw, kind=VOID, name=name, attrs=_attrs(raw)))
        else:  # a block element's tag, <br>, the doctype: the run ends here
            flush()
            attrs = _attrs(raw) if kind in ("start", "startend") else ()
            parts.append(AttrPart(Piece(raw, kind=VOID, attrs=attrs)) if attrs else raw)
        i += 1
    flush()
    return parts, cut


def _escaper(toks):
    """Translated text escaped for HTML: a character the document wrote as an entity is written as it was
    (`&nbsp;`, `&copy;`), and `&`, `<`, `>` as `&amp;`, `&lt;`, `&gt;`."""
    forms = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
    seen: dict[str, str] = {}
    for raw, kind, _ in toks:
        if kind == "entity":
            plain = html.unescape(raw)
            if len(plain) == 1 and not plain.isspace():
                seen.setdefault(plain, raw if raw.endswith(";") else forms.get(plain, raw))
    table = str.maketrans({**forms, **seen})

    def escape(text: str) -> str:
        return text.translate(table)

    return escape

