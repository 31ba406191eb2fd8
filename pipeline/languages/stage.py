"""The detect stage (`--source-lang auto`): each row's language identified from its source text.

A plain function over pyarrow tables (Ray Data runs it in tasks of a fraction of a CPU); the model is loaded
once per worker process. In document mode it runs inside the stage that cuts documents into segments, on
whole documents' segments: a segment too short or too unsure to call (a heading, "Danke!") takes the language
of most of its document's identified characters, so a document with paragraphs in two languages keeps both.
"""

from __future__ import annotations

from functools import lru_cache

import pyarrow as pa

from pipeline.columns import DETECTED


@lru_cache(maxsize=4)
def detector(min_confidence: float):
    from pipeline.languages.detect import LanguageDetector

    return LanguageDetector(min_confidence)


def detect_languages(table: pa.Table, source_column: str, min_confidence: float, group_column: str = "") -> pa.Table:
    """`table` with `detected_lang` (null where not identified); `group_column`: rows of one document share it,
    and a row not identified takes its document's language."""
    from pipeline.inputs import decode_texts

    texts = decode_texts(table.column(source_column))[0]
    langs = detector(min_confidence).detect(texts)
    if group_column:
        langs = fill_from_groups(langs, [len(t or "") for t in texts], table.column(group_column).to_pylist())
    return table.append_column(DETECTED, pa.array([lang or None for lang in langs], pa.string()))


def majority_language(langs: list[str], weights: list[int]) -> str:
    """The language of most characters among identified rows ("" none); ties: the first seen."""
    total: dict[str, int] = {}
    for lang, w in zip(langs, weights, strict=True):
        if lang:
            total[lang] = total.get(lang, 0) + w
    return max(total, key=total.get) if total else ""


def fill_from_groups(langs: list[str], weights: list[int], groups: list) -> list[str]:
    members: dict = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    out = list(langs)
    for idx in members.values():
        if all(langs[i] for i in idx):
            continue
        fill = majority_language([langs[i] for i in idx], [weights[i] for i in idx])
        for i in idx:
            out[i] = out[i] or fill
    return out
