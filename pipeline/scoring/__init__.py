"""Scoring: metrics from summed sufficient statistics (sacreBLEU underneath), corpus and per-sentence scores,
the run report and its charts.
"""

from importlib import import_module

# name -> the module that defines it, imported on first use: sacreBLEU loads only where a score
# is computed.
_HOMES = {
    "BLEU_TOKENIZERS": "pipeline.scoring.metrics",
    "MetricOptions": "pipeline.scoring.metrics",
    "bleu_tokenize_for": "pipeline.scoring.metrics",
    "make_metrics": "pipeline.scoring.metrics",
    "parse_metrics": "pipeline.scoring.metrics",
    "sentence_stats": "pipeline.scoring.metrics",
    "Accumulator": "pipeline.scoring.corpus",
    "ScoreBatch": "pipeline.scoring.corpus",
    "ScoreSpec": "pipeline.scoring.corpus",
    "finalize": "pipeline.scoring.corpus",
    "SentenceScores": "pipeline.scoring.sentence_scores",
    "build_report": "pipeline.scoring.report",
    "language_pair_entries": "pipeline.scoring.report",
    "write_report": "pipeline.scoring.report",
    "corpus_statistics": "pipeline.scoring.sacrebleu_api",
    "score_from_statistics": "pipeline.scoring.sacrebleu_api",
    "bar_chart": "pipeline.scoring.charts",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
