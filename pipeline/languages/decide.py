"""What a row's language means before any decoding: the status of a row that is not to be decoded.

    no language (not given, not identified)            -> unknown_language
    the target language (--target-lang)                -> same_language (its source is its translation)
    not the model's source language (bilingual model)  -> unsupported_language
    else                                                -> None: decode it

A bilingual model's language pair comes from its own files where they declare it (our checkpoints:
config.json metadata.languages; Hugging Face Marian / OPUS-MT: tokenizer_config.json source_lang and
target_lang); see `ModelLanguages`. A model that declares no source language takes any row's language.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.columns import RowStatus
from pipeline.languages.detect import normalise_code


@dataclass(frozen=True)
class ModelLanguages:
    """The one language pair of a bilingual model ("" where it declares none); multilingual models: ("", "")."""

    source: str = ""
    target: str = ""

    @classmethod
    def declared(cls, source: str | None, target: str | None) -> ModelLanguages:
        """From a model's files. Only plain language codes count: OPUS-MT's group codes for multilingual
        models (`mul`, `roa`, `gem`) name no single language."""
        def code(value) -> str:
            value = normalise_code(value) if isinstance(value, str) else ""
            return value if len(value) == 2 else ""

        return cls(code(source), code(target))


def language_status(source: str, target: str, model: ModelLanguages) -> RowStatus | None:
    """The status of a row of source language `source` ("" unknown) to be translated into `target` ("" not
    given) by a model of languages `model`; None when the row is to be decoded."""
    if not source:
        return RowStatus.UNKNOWN_LANGUAGE
    source = normalise_code(source)
    if target and source == normalise_code(target):
        return RowStatus.SAME_LANGUAGE
    if model.source and source != model.source:
        return RowStatus.UNSUPPORTED_LANGUAGE
    return None
