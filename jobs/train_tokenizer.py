"""Train a SentencePiece model (joint or one per side) from Parquet columns at any URI.

    python jobs/train_tokenizer.py --input s3://bucket/corpus/train --output s3://bucket/tok --vocab-size 8000

Reads the Parquet files streaming, one record batch at a time, and keeps a
uniform reservoir sample of at most --max-sentences per side, so corpora
larger than memory work. Writes spm.model (joint) or source.spm + target.spm,
and tokenizer.json describing them.
"""

from __future__ import annotations

import os
import random
import sys
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script

import pyarrow.parquet as pq  # noqa: E402

from jobs.cli import parse_config, print_config  # noqa: E402
from model.config_fields import arg, redacted  # noqa: E402
from model.tokenizers import Tokenizer, save_tokenizer, train_sentencepiece  # noqa: E402
from pipeline.io import list_parquet_files  # noqa: E402


@dataclass(frozen=True)
class TokenizerConfig:
    """Train SentencePiece on a sample of Parquet text columns."""

    input: str = arg(help="Parquet file, directory/prefix or glob (any fsspec URI)")
    output: str = arg(help="directory URI that receives spm.model (or source.spm/target.spm) and tokenizer.json")
    source_column: str = arg("source", help="source-side text column")
    target_column: str = arg("reference", help="target-side text column")
    joint: bool = arg(True, help="one vocabulary for both sides (needed for shared/tied embeddings)")
    vocab_size: int = arg(8000, help="vocabulary size (per model)")
    model_type: str = arg("unigram", help="SentencePiece model type", choices=["unigram", "bpe"])
    character_coverage: float = arg(1.0, help="share of characters covered (lower for CJK scripts)")
    max_sentences: int = arg(2_000_000, help="sample at most this many sentences per side (reservoir sampling)")
    seed: int = arg(1, help="sampling seed")
    storage_options: dict = arg({}, help="JSON options for fsspec (e.g. endpoint_url); never logged")


class Reservoir:
    """Uniform sample of at most `size` items from a stream of unknown length (Algorithm R)."""

    def __init__(self, size: int, rng: random.Random):
        self.size, self.rng, self.items, self.seen = size, rng, [], 0

    def add(self, item: str) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
        else:
            j = self.rng.randrange(self.seen)
            if j < self.size:
                self.items[j] = item


def sample_columns(cfg: TokenizerConfig) -> dict[str, Reservoir]:
    fs, files = list_parquet_files(cfg.input, cfg.storage_options)
    columns = [cfg.source_column, cfg.target_column]
    rng = random.Random(cfg.seed)
    samples = {c: Reservoir(cfg.max_sentences, rng) for c in columns}
    for path in files:
        with fs.open(path, "rb") as fh:
            pf = pq.ParquetFile(fh)
            missing = [c for c in columns if c not in pf.schema_arrow.names]
            if missing:
                raise ValueError(f"{fs.unstrip_protocol(path)}: missing column {missing[0]!r}")
            for batch in pf.iter_batches(columns=columns, batch_size=8192):
                for c in columns:
                    for text in batch.column(c).to_pylist():
                        if text and text.strip():
                            samples[c].add(text)
    return samples


def train(cfg: TokenizerConfig) -> dict:
    t0 = time.time()
    samples = sample_columns(cfg)
    src, tgt = samples[cfg.source_column], samples[cfg.target_column]
    kw = dict(vocab_size=cfg.vocab_size, model_type=cfg.model_type, character_coverage=cfg.character_coverage)
    if cfg.joint:
        tokenizer = Tokenizer(train_sentencepiece(src.items + tgt.items, **kw))
    else:
        tokenizer = Tokenizer(train_sentencepiece(src.items, **kw), train_sentencepiece(tgt.items, **kw))
    info = {
        "sentences_seen": {"source": src.seen, "target": tgt.seen},
        "sentences_sampled": {"source": len(src.items), "target": len(tgt.items)},
        "seconds": round(time.time() - t0, 1),
        "config": redacted(cfg),
    }
    save_tokenizer(tokenizer, cfg.output, info, cfg.storage_options)
    return {**info, "source_vocab_size": tokenizer.src_vocab_size, "target_vocab_size": tokenizer.tgt_vocab_size}


def main(argv=None) -> int:
    cfg = parse_config(TokenizerConfig, argv)
    print_config(cfg)
    try:
        info = train(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"trained {'joint' if cfg.joint else 'per-side'} SentencePiece "
          f"(vocab {info['source_vocab_size']}/{info['target_vocab_size']}) on "
          f"{info['sentences_sampled']} sentences in {info['seconds']} s -> {cfg.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
