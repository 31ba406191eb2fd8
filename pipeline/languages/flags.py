"""Quality flags: cheap signs that a translation is doubtful, per row, with no second model pass.

Each rule reads only the row's source and translation (and, for `length_ratio`, the other rows of its
shard); a row gets the list of the flags it trips (`flags` column, empty when none), and the report
counts them. Only rows that were decoded are flagged (status ok, split, truncated, length_limit): an
empty, same_language or unsupported row has nothing of the model's to doubt.

    repeated_ngrams        the translation holds a loop: an n-gram of 1-4 words repeated back to back
                           (a word 4 times, a longer n-gram 3 times: "Zwei 8 8 8 8", "auf dem auf dem auf
                           dem"), or a letter 6 times in a row ("Ooooooh")
    copied_source          the translation is the source (compared without case, punctuation and spaces),
                           or, with 4 words or more, at least 80% of its words are words of the source
    wrong_target_language  the translation's language, identified as sources are (pipeline/languages/
                           detect.py: called only when sure), is not the target language
    length_ratio           log((translation characters + 1) / (source characters + 1)) is an outlier among
                           the shard's decoded rows: its modified z-score (0.6745 (x - median) / MAD,
                           Iglewicz and Hoaglin 1993) is over 3.5 and it is over 1.5x off the median ratio;
                           computed when the shard has at least 20 decoded rows (the model's usual range is
                           measured on the run's own output, not assumed)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from pipeline.columns import RowStatus

DECODED = frozenset({RowStatus.OK, RowStatus.SPLIT, RowStatus.TRUNCATED, RowStatus.LENGTH_LIMIT})
_WORD = re.compile(r"\w+", re.UNICODE)
_LETTER_RUN = re.compile(r"([^\W\d_])\1{5,}", re.UNICODE)


class Flag(StrEnum):
    REPEATED_NGRAMS = "repeated_ngrams"
    COPIED_SOURCE = "copied_source"
    WRONG_TARGET_LANGUAGE = "wrong_target_language"
    LENGTH_RATIO = "length_ratio"


@dataclass(frozen=True)
class FlagRules:
    """The thresholds of the rules above (one home; the module docstring says why each)."""

    max_ngram: int = 4
    unigram_repeats: int = 4
    ngram_repeats: int = 3
    copy_share: float = 0.8
    copy_min_words: int = 4
    ratio_z: float = 3.5
    ratio_min_factor: float = 1.5
    ratio_min_rows: int = 20


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def repeated_ngrams(text: str, rules: FlagRules = FlagRules()) -> bool:
    if _LETTER_RUN.search(text):
        return True
    words = text.split()
    for n in range(1, rules.max_ngram + 1):
        need = rules.unigram_repeats if n == 1 else rules.ngram_repeats
        for start in range(len(words) - n * need + 1):
            gram = words[start:start + n]
            if all(words[start + k * n:start + (k + 1) * n] == gram for k in range(1, need)):
                return True
    return False


def copied_source(source: str, translation: str, rules: FlagRules = FlagRules()) -> bool:
    src, out = _words(source), _words(translation)
    if not out:
        return False
    if src == out:
        return True
    if len(out) < rules.copy_min_words:
        return False
    known = set(src)
    return sum(w in known for w in out) / len(out) >= rules.copy_share


def log_ratios(sources: list[str], translations: list[str]) -> list[float]:
    return [math.log((len(t or "") + 1) / (len(s or "") + 1)) for s, t in zip(sources, translations, strict=True)]


def ratio_outliers(ratios: list[float], rules: FlagRules = FlagRules()) -> list[bool]:
    """Which log length ratios are outliers of this population (module docstring); none when it is small."""
    if len(ratios) < rules.ratio_min_rows:
        return [False] * len(ratios)
    ordered = sorted(ratios)
    median = _median(ordered)
    mad = _median(sorted(abs(r - median) for r in ratios))
    floor = math.log(rules.ratio_min_factor)
    out = []
    for r in ratios:
        far = abs(r - median)
        z = 0.6745 * far / mad if mad > 0 else (math.inf if far > 0 else 0.0)
        out.append(z > rules.ratio_z and far > floor)
    return out


def _median(ordered: list[float]) -> float:
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def flag_rows(sources: list, translations: list, statuses: list, targets: list[str] | str, detector=None,
              rules: FlagRules = FlagRules()) -> list[list[str]]:
    """Each row's flags (in the order of `Flag`). `targets`: each row's target language, or one for all (""
    unknown: no wrong_target_language); `detector`: a LanguageDetector (None: no wrong_target_language)."""
    from pipeline.languages.detect import normalise_code

    if isinstance(targets, str):
        targets = [targets] * len(statuses)
    rows = [i for i, s in enumerate(statuses) if s in DECODED and sources[i] and translations[i]]
    flags: list[list[str]] = [[] for _ in statuses]
    outliers = ratio_outliers(log_ratios([sources[i] for i in rows], [translations[i] for i in rows]), rules)
    checked = [i for i in rows if targets[i]] if detector is not None else []
    languages = dict(zip(checked, detector.detect([translations[i] for i in checked]), strict=True)) if checked else {}
    for i, outlier in zip(rows, outliers, strict=True):
        source, text, lang = sources[i], translations[i], languages.get(i, "")
        if repeated_ngrams(text, rules):
            flags[i].append(Flag.REPEATED_NGRAMS.value)
        if copied_source(source, text, rules):
            flags[i].append(Flag.COPIED_SOURCE.value)
        if lang and lang != normalise_code(targets[i]):
            flags[i].append(Flag.WRONG_TARGET_LANGUAGE.value)
        if outlier:
            flags[i].append(Flag.LENGTH_RATIO.value)
    return flags


def flag_counts(flags: list[list[str]]) -> dict[str, int]:
    """How many rows carry each flag, and how many carry any (`any`)."""
    counts = Counter(f for row in flags for f in row)
    return {**{f.value: counts.get(f.value, 0) for f in Flag}, "any": sum(1 for row in flags if row)}
