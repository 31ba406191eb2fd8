"""Search settings, without torch: CPU-only processes (the tokenize and detokenize actors, the driver)
read them too."""

from __future__ import annotations

from dataclasses import dataclass

from model.config_fields import arg

LENGTH_PENALTIES = ("none", "average", "gnmt")


@dataclass(frozen=True)
class DecodeConfig:
    """Every search setting, declared once: the translation job's flags, its resume fingerprint and its
    report are generated from these fields, and training validation decodes with the same defaults."""

    beam_size: int = arg(5, help="beam size (1: greedy)")
    # Maximum target length (EOS excluded) = max_len_a * source_length + max_len_b.
    max_len_a: float = arg(1.5, help="max target length = a * source length + b")
    max_len_b: int = arg(10, help="max target length = a * source length + b")
    min_len: int = arg(1, help="minimum target length (EOS is forbidden before it)")
    length_penalty: str = arg("average", help="hypothesis length normalization: none, average "
                              "(score / length**alpha, fairseq) or gnmt (Wu et al. 2016)", choices=LENGTH_PENALTIES)
    alpha: float = arg(1.0, help="length penalty exponent")
    nbest: int = arg(1, help="hypotheses per sentence; > 1 adds `nbest` and `nbest_scores` columns")
    # fairseq's --no-repeat-ngram-size, transformers' and CTranslate2's no_repeat_ngram_size: a guard against
    # the loops a model can fall into (issue 31), token for token transformers' NoRepeatNGramLogitsProcessor.
    no_repeat_ngram_size: int = arg(0, help="no n-gram of this many target tokens twice in a hypothesis: a token "
                                    "that would repeat one is banned (0: off; as transformers' "
                                    "no_repeat_ngram_size)")

    def __post_init__(self):
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if not 1 <= self.nbest <= self.beam_size:
            raise ValueError(f"nbest must be in 1..beam_size ({self.beam_size}), got {self.nbest}")
        if self.no_repeat_ngram_size < 0:
            raise ValueError(f"no_repeat_ngram_size must be >= 0 (0: off), got {self.no_repeat_ngram_size}")
        if self.length_penalty not in LENGTH_PENALTIES:
            raise ValueError(f"length_penalty must be one of {LENGTH_PENALTIES}")
