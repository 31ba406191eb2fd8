"""The translation job's Ray Data stages: tokenize (CPU), translate (actor pool), detokenize (CPU), write.

Each stage is a callable class that loads its heavy state once, checks its
input columns, and takes and returns pyarrow tables. They run without Ray
too: tests call them directly.

Row statuses: pipeline/columns.py (RowStatus).
"""

from importlib import import_module

# name -> the module that defines it, imported on first use: a CPU stage's process
# imports only its own stage's module.
_HOMES = {
    "Tokenize": "pipeline.stages.tokenize",
    "Translator": "pipeline.stages.translate",
    "Detokenize": "pipeline.stages.detokenize",
    "RoutedTokenize": "pipeline.stages.routed",
    "RoutedDetokenize": "pipeline.stages.routed",
    "make_drop_done": "pipeline.stages.write",
    "write_parts": "pipeline.stages.write",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
