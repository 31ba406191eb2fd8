"""Corpus scores from summed sufficient statistics equal sacreBLEU's own corpus_score."""

import numpy as np
import pytest
from sacrebleu.metrics import BLEU, CHRF, TER

from pipeline.metrics import MetricOptions, make_metrics, score_from_stats, sentence_stats

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
    assert metric._compute_score_from_stats(summed).format(score_only=True) == theirs.format(score_only=True)
    assert str(metric.get_signature()) == str(ref_metric.get_signature())
