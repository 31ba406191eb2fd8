"""The layout of a marked-up document, by format: what DocumentUnit asks for with `--format html|markdown`."""

from __future__ import annotations

from pipeline.documents.markup.html import html_parts
from pipeline.documents.markup.layout import MarkupLayout, read_markup
from pipeline.documents.markup.markdown import markdown_parts


def split_html(text: str | None, lang: str = "en") -> MarkupLayout:
    return read_markup(text, lang, html_parts)


def split_markdown(text: str | None, lang: str = "en") -> MarkupLayout:
    return read_markup(text, lang, markdown_parts)
