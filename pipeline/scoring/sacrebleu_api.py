"""The few private sacreBLEU entry points the distributed metrics need, behind one small adapter.

Scores that distribute need sacreBLEU's per-sentence sufficient statistics and its formula that
turns summed statistics into a score. sacreBLEU computes both inside `corpus_score` but exposes
neither publicly (sacreBLEU 2.x: `Metric._extract_corpus_statistics` and
`Metric._compute_score_from_stats`). Every use of them goes through this module, and
`check_private_api()` (run by tests/unit/test_metrics.py and at import of pipeline.scoring.metrics) fails
loudly, naming the missing attribute, if a sacreBLEU upgrade renames them, instead of
producing wrong numbers somewhere downstream.
"""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu
from sacrebleu.metrics.base import Metric
from sacrebleu.tokenizers.tokenizer_base import BaseTokenizer

PRIVATE_METHODS = ("_extract_corpus_statistics", "_compute_score_from_stats")


def check_private_api() -> None:
    missing = [name for name in PRIVATE_METHODS if not callable(getattr(Metric, name, None))]
    if missing:
        raise ImportError(f"sacrebleu {sacrebleu.__version__} lacks {', '.join(missing)}, which the distributed "
                          "metrics rely on (written against sacrebleu 2.4-2.6); pin sacrebleu<3 or update "
                          "pipeline/scoring/sacrebleu_api.py")


def corpus_statistics(metric: Metric, hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> list:
    """One row of sufficient statistics per hypothesis (what corpus_score sums)."""
    return metric._extract_corpus_statistics(list(hypotheses), [list(r) for r in references])


def score_from_statistics(metric: Metric, summed):
    """sacreBLEU's score object (BLEUScore, CHRFScore, TERScore) for summed statistics."""
    return metric._compute_score_from_stats(summed)


def quiet(metric: Metric) -> Metric:
    """Silence BLEU's "did you forget to detokenize?" warning, which fires on partial batches and
    changes no statistic. `_force` is also what BLEU's public `force=True` sets."""
    metric._force = True
    return metric


def clear_tokenizer_caches() -> None:
    """Empty sacreBLEU's tokenizer caches (an lru_cache of 65,536 lines on each tokenizer class's
    `__call__`, shared by the whole process).

    In a long-running scoring actor they fill with tokenized lines from many batches (~45 MB for
    13a BLEU) and pin heap pages among the freed ones, so the actor's memory rises for the first
    few hundred thousand rows. Emptied after each call, the cache still serves repeats within a
    call, and the actor's memory stays flat. Every tokenizer class derives from BaseTokenizer.
    """
    pending = list(BaseTokenizer.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        for attr in vars(cls).values():
            clear = getattr(attr, "cache_clear", None)
            if callable(clear):
                clear()
