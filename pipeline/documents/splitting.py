"""Documents in, documents out: split a document into translatable segments and put it back together.

A document (an article, a ticket, a product description) is cut into a *layout*: an alternation of
text kept verbatim and segments to translate. Joining the verbatim parts with the segments in order
gives back the document byte for byte, so any translation of the segments slots into the original
layout:

- lines and their exact endings (`\\n`, `\\r\\n`, `\\r`), blank lines and runs of them;
- leading indentation and trailing whitespace of every line;
- bullets and numbering at line starts (`- `, `* `, `• `, `1. `, `2) `, `a) `);
- URLs and e-mail addresses anywhere (the text around them is translated on its own);
- sentences, found by sentencex (Wikimedia's multilingual segmenter, ~250 languages through
  fallbacks, rule-based with per-language abbreviation lists, no model to download), with the
  whitespace between them kept;
- pieces with no letter at all (numbers, punctuation, emoji-only) are copied as they are.

The split is a pure function of the text and the language, so the commit step recomputes it from
the input instead of carrying layouts through the pipeline.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Line endings kept exactly; the lookahead keeps "\r\n" one ending.
_LINE_END = re.compile(r"(\r\n|\n|\r)")
# A bullet or a number/letter item marker at the start of a line, with the space after it.
_ITEM = re.compile(r"(?:[-*•‣◦▪·–]|\(?\d{1,3}[.)]|\(?[A-Za-z][.)]|\(?[ivxlcdm]{1,5}[.)])[ \t]+")
# URLs (scheme or www.) and e-mail addresses: never sent to the model.
_PROTECTED = re.compile(
    r"(?:(?:https?|ftp)://|www\.)[^\s<>\"'()\[\]{}]*[^\s<>\"'()\[\]{}.,;:!?]"
    r"|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)


@dataclass(frozen=True)
class Layout:
    """parts[i] is verbatim text when translate[i] is False, a segment to translate otherwise."""

    parts: tuple[str, ...]
    translate: tuple[bool, ...]
    cut: bool = False  # a sentence longer than the limit was cut at spaces (the document's status is "split")
    unparsable: bool = False  # never for plain text (markup/layout.py's MarkupLayout sets it)

    @property
    def segments(self) -> list[str]:
        return [p for p, t in zip(self.parts, self.translate, strict=True) if t]

    @property
    def shown(self) -> list[bool]:
        """Per segment, whether its translation is in the document (every one is, in plain text)."""
        return [True] * sum(self.translate)

    def fill(self, translations: list[str]) -> str:
        """The document with each segment replaced by its translation (in order)."""
        if len(translations) != sum(self.translate):
            raise ValueError(f"{len(translations)} translations for {sum(self.translate)} segments")
        it = iter(translations)
        return "".join(next(it) if t else p for p, t in zip(self.parts, self.translate, strict=True))


def _has_letter(text: str) -> bool:
    return any(unicodedata.category(c).startswith("L") for c in text)


class _Builder:
    def __init__(self, max_chars: int):
        self.parts: list[str] = []
        self.translate: list[bool] = []
        self.max_chars, self.cut = max_chars, False

    def verbatim(self, text: str) -> None:
        if not text:
            return
        if self.parts and not self.translate[-1]:
            self.parts[-1] += text  # adjacent verbatim pieces merge
        else:
            self.parts.append(text)
            self.translate.append(False)

    def segment(self, text: str) -> None:
        """Translate the core of `text`; its surrounding whitespace stays verbatim."""
        core = text.strip()
        if not core or not _has_letter(core):
            self.verbatim(text)
            return
        start = text.index(core)
        self.verbatim(text[:start])
        for piece, space in self._pieces(core):
            self.parts.append(piece)
            self.translate.append(True)
            self.verbatim(space)
        self.verbatim(text[start + len(core):])

    def _pieces(self, core: str):
        """(piece, whitespace after it): a sentence longer than max_chars (text without sentence
        punctuation, a run-on line) cut at spaces, so that no single segment holds a model actor."""
        if len(core) <= self.max_chars:
            yield core, ""
            return
        self.cut = True
        while len(core) > self.max_chars:
            cut = max(core.rfind(" ", 0, self.max_chars), core.rfind("\t", 0, self.max_chars))
            if cut <= 0:  # no space in the window (a long token): cut inside it
                yield core[: self.max_chars], ""
                core = core[self.max_chars:]
                continue
            rest = core[cut:].lstrip()
            yield core[:cut], core[cut: len(core) - len(rest)]
            core = rest
        if core:
            yield core, ""

    def layout(self) -> Layout:
        return Layout(tuple(self.parts), tuple(self.translate), self.cut)


MAX_CHARS = 2000  # longer sentences are cut at spaces (~500 subwords; the tokenizer splits further if needed)


def split_document(text: str | None, lang: str = "en", max_chars: int = MAX_CHARS) -> Layout:
    """The layout of a document; None and whitespace-only documents have no segments."""
    from sentencex import segment as sentences

    b = _Builder(max_chars)
    if not text:
        return b.layout()
    for piece in _LINE_END.split(text):
        if _LINE_END.fullmatch(piece):
            b.verbatim(piece)
            continue
        body = piece.lstrip()
        b.verbatim(piece[: len(piece) - len(body)])  # indentation
        item = _ITEM.match(body)
        if item:
            b.verbatim(item.group(0))
            body = body[item.end():]
        pos = 0
        for match in _PROTECTED.finditer(body):
            for sentence in sentences(lang, body[pos:match.start()]):
                b.segment(sentence)
            b.verbatim(match.group(0))
            pos = match.end()
        for sentence in sentences(lang, body[pos:]):
            b.segment(sentence)
    return b.layout()
