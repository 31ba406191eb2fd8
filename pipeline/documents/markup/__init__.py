"""Marked-up documents (`--format html|markdown` with `--unit document`): the text translated, the markup kept
byte for byte. html.py and markdown.py read a document into pieces of raw source; layout.py makes runs of
inline content into segments and puts translations back; tags.py places inline tags in a translation.
"""

from importlib import import_module

# name -> the module that defines it, imported on first use.
_HOMES = {
    "split_html": "pipeline.documents.markup.formats",
    "split_markdown": "pipeline.documents.markup.formats",
    "MarkupLayout": "pipeline.documents.markup.layout",
    "Mark": "pipeline.documents.markup.tags",
    "place": "pipeline.documents.markup.tags",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
