"""Corpus scores from summed sufficient statistics equal sacreBLEU's own corpus_score."""

import numpy as np
import pytest
from sacrebleu.metrics import BLEU, CHRF, TER

import pipeline.scoring.metrics
from pipeline.scoring.metrics import MetricOptions, make_metrics, score_from_stats, sentence_stats
from pipeline.scoring.sacrebleu_api import check_private_api, corpus_statistics, score_from_statistics

HYPS = ["Ein Mann fährt Fahrrad.", "", "Zwei Hunde spielen im Schnee!", "Ünïcödé — ça marche?", "ok"]
REF1 = ["Ein Mann fährt ein Fahrrad.", "Eine Frau.", "Zwei Hunde spielen im Schnee.", "Unicode, ça marche ?", ""]
REF2 = ["Ein Radfahrer.", "Frau", "Hunde im Schnee.", "ça marche", "okay"]

CASES = {
    "one reference": (HYPS, [REF1]),
    "two references": (HYPS, [REF1, REF2]),
    "one sentence": (HYPS[:1], [REF1[:1]]),
    "all empty hypotheses": ([""] * 3, [REF1[:3]]),
}
OPTIONS = {
    "defaults": MetricOptions(),
    "chrF++ lowercase intl": MetricOptions(chrf_word_order=2, lowercase=True, bleu_tokenize="intl"),
}


def reference_metric(name, opts, n_refs):
    return {
        "bleu": BLEU(tokenize=opts.bleu_tokenize, lowercase=opts.lowercase),
        "chrf": CHRF(word_order=opts.chrf_word_order, lowercase=opts.lowercase),
        "ter": TER(normalized=opts.ter_normalized, case_sensitive=opts.ter_case_sensitive),
    }[name]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("opt", OPTIONS)
@pytest.mark.parametrize("name", ["bleu", "chrf", "ter"])
def test_summed_statistics_equal_corpus_score(case, opt, name):
    hyps, refs = CASES[case]
    opts = OPTIONS[opt]
    metric = make_metrics(opts, n_refs=len(refs))[name]
    # statistics computed in two "shards" and summed, as the jobs do
    cut = len(hyps) // 2
    parts = [sentence_stats(metric, hyps[:cut], [r[:cut] for r in refs]),
             sentence_stats(metric, hyps[cut:], [r[cut:] for r in refs])]
    summed = np.concatenate(parts).sum(0)
    ours = score_from_stats(metric, summed)
    ref_metric = reference_metric(name, opts, len(refs))
    theirs = ref_metric.corpus_score(hyps, refs)
    assert ours == theirs.score
    # the printed score, as sacreBLEU prints it, is the same too
    assert score_from_statistics(metric, summed).format(score_only=True) == theirs.format(score_only=True)
    assert str(metric.get_signature()) == str(ref_metric.get_signature())


@pytest.mark.parametrize("name", ["bleu", "chrf", "ter"])
def test_chunked_statistics_equal_one_call(name, monkeypatch):
    """sacreBLEU is called in row chunks (to bound the heap); the per-sentence rows must not change."""
    hyps, refs = HYPS * 3, [REF1 * 3, REF2 * 3]
    metric = make_metrics(MetricOptions(), n_refs=2)[name]
    whole = np.asarray(corpus_statistics(metric, hyps, refs), dtype=np.float64)
    monkeypatch.setattr(pipeline.scoring.metrics, "STATS_CHUNK_ROWS", 4)  # 15 rows: chunks of 4, 4, 4, 3
    assert np.array_equal(sentence_stats(metric, hyps, refs), whole)


def test_tokenizer_caches_are_emptied_after_each_call():
    """sacreBLEU's process-wide tokenizer caches must not carry lines from one batch to the next."""
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    from sacrebleu.tokenizers.tokenizer_ter import TercomTokenizer

    metrics = make_metrics(MetricOptions(ter_normalized=True))
    metrics["bleu"].tokenizer("a line that fills the cache")
    assert Tokenizer13a.__call__.cache_info().currsize > 0
    for m in metrics.values():
        sentence_stats(m, HYPS, [REF1])
    assert Tokenizer13a.__call__.cache_info().currsize == 0
    assert TercomTokenizer.__call__.cache_info().currsize == 0


def test_the_private_sacrebleu_api_we_rely_on_is_there(monkeypatch):
    """The adapter names what a sacreBLEU upgrade removed instead of failing somewhere downstream."""
    from sacrebleu.metrics.base import Metric

    check_private_api()
    monkeypatch.delattr(Metric, "_extract_corpus_statistics")
    with pytest.raises(ImportError, match="_extract_corpus_statistics"):
        check_private_api()
