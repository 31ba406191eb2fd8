"""Translations reused instead of decoded again: the translation memory shared by runs (`--memory`), and the
board that lets the model actors of one run decode each distinct segment once.

A segment's key is what the model sees (its token ids, target-language prefix included) under a fingerprint of
everything else that decides its translation (pipeline/memory/keys.py), so a reused translation is the one the
model would produce; never a translation of another model or other settings.
"""

from importlib import import_module

# name -> the module that defines it, imported on first use.
_HOMES = {
    "MEMORY_COLUMN": "pipeline.memory.keys",
    "MEMORY_TYPE": "pipeline.memory.keys",
    "REUSE_DECODED": "pipeline.memory.keys",
    "REUSE_DUPLICATE": "pipeline.memory.keys",
    "REUSE_MEMORY": "pipeline.memory.keys",
    "MEMORY_SCHEMA": "pipeline.memory.store",
    "memory_fingerprint": "pipeline.memory.keys",
    "segment_keys": "pipeline.memory.keys",
    "Reuse": "pipeline.memory.reuse",
    "ReuseSpec": "pipeline.memory.reuse",
    "SegmentBoard": "pipeline.memory.board",
    "start_board": "pipeline.memory.board",
    "TranslationMemory": "pipeline.memory.store",
    "memory_entries": "pipeline.memory.store",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
