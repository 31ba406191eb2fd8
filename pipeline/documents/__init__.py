"""Documents (`--unit document`): cutting a document into segments and putting it back, and what one input
row is (a sentence or a document) wherever the pipeline needs to know.
"""

from importlib import import_module

# name -> the module that defines it, imported on first use.
_HOMES = {
    "split_document": "pipeline.documents.splitting",
    "SENTENCES": "pipeline.documents.units",
    "unit_for": "pipeline.documents.units",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
