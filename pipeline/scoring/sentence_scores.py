"""Sentence-level BLEU and chrF columns for the scoring job's --sentence-scores output."""

from __future__ import annotations

import pyarrow as pa
from sacrebleu.metrics import BLEU, CHRF

from pipeline.scoring.corpus import ScoreSpec, reference_streams, texts
from pipeline.scoring.metrics import sentence_stats
from pipeline.scoring.sacrebleu_api import score_from_statistics


class SentenceScores:
    """Adds sentence_bleu and sentence_chrf to every row (nulls scored as empty strings)."""

    def __init__(self, spec: ScoreSpec):
        opts = spec.options
        self.spec = spec
        # Sentence BLEU needs effective n-gram order, as sacreBLEU's sentence_bleu does.
        self.bleu = BLEU(tokenize=opts.bleu_tokenize, lowercase=opts.lowercase, effective_order=True)
        self.chrf = CHRF(word_order=opts.chrf_word_order, lowercase=opts.lowercase)

    def __call__(self, table: pa.Table) -> pa.Table:
        hyps, _ = texts(table, self.spec.hypothesis)
        refs, _ = reference_streams(table, self.spec.references)
        for name, metric in (("sentence_bleu", self.bleu), ("sentence_chrf", self.chrf)):
            stats = sentence_stats(metric, hyps, refs)
            scores = [score_from_statistics(metric, row).score for row in stats]
            table = table.append_column(name, pa.array(scores, pa.float64()))
        return table
