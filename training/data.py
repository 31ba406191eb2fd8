"""Training data: tokenization as a Ray Data stage, token-budget batches on each worker.

Ray Data streams Parquet rows to the workers (`get_dataset_shard`), so a corpus
larger than memory trains. Each worker collects a pool of rows, sorts them by
length and cuts batches of at most `max_tokens` padded tokens (fairseq
--max-tokens; Marian's maxi-batches), then shuffles the batch order.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from model.decoding import budget_batches, pad_batch
from model.tokenizers import BOS_ID, EOS_ID, PAD_ID


class TokenizePairs:
    """Ray Data UDF: text columns -> id lists. Loads the SentencePiece models once per actor."""

    def __init__(self, tokenizer_uri: str, source_column: str, target_column: str, storage_options: dict):
        from model.tokenizers import load_tokenizer_dir

        self.tokenizer = load_tokenizer_dir(tokenizer_uri, storage_options)
        self.source_column, self.target_column = source_column, target_column

    def __call__(self, batch: dict) -> dict:
        for col in (self.source_column, self.target_column):
            if col not in batch:
                raise KeyError(f"tokenize stage: input has no column {col!r} (columns: {sorted(batch)})")
        src = [s if isinstance(s, str) else "" for s in batch[self.source_column]]
        tgt = [t if isinstance(t, str) else "" for t in batch[self.target_column]]
        return {
            # Without EOS here: the batcher adds EOS/BOS, and an empty side stays detectable.
            "src_ids": _object_array(self.tokenizer.source.encode(src)),
            "tgt_ids": _object_array(self.tokenizer.encode_target(tgt)),
        }


def _object_array(rows: list[list[int]]) -> np.ndarray:
    out = np.empty(len(rows), dtype=object)
    for i, r in enumerate(rows):
        out[i] = np.asarray(r, dtype=np.int32)
    return out


@dataclass
class Batch:
    src: torch.Tensor  # (B, S) ids + EOS, right-padded
    tgt_in: torch.Tensor  # (B, T) BOS + ids
    tgt_out: torch.Tensor  # (B, T) ids + EOS
    n_tokens: int  # target tokens (EOS included): the loss normalizer

    def to(self, device) -> Batch:
        return Batch(self.src.to(device), self.tgt_in.to(device), self.tgt_out.to(device), self.n_tokens)


def make_batch(pairs: list[tuple[list[int], list[int]]]) -> Batch:
    src = pad_batch([s for s, _ in pairs], PAD_ID, suffix=EOS_ID)
    tgt_in = pad_batch([t for _, t in pairs], PAD_ID, prefix=BOS_ID)
    tgt_out = pad_batch([t for _, t in pairs], PAD_ID, suffix=EOS_ID)
    return Batch(src, tgt_in, tgt_out, int(tgt_out.ne(PAD_ID).sum()))


DROP_REASONS = ("empty", "one_side_empty", "too_long")


def filter_reason(src: list[int], tgt: list[int], max_len: int) -> str | None:
    """Why a training pair is dropped, or None to keep it (each reason is counted and logged)."""
    if len(src) == 0 and len(tgt) == 0:
        return "empty"
    if len(src) == 0 or len(tgt) == 0:
        return "one_side_empty"
    if len(src) + 1 > max_len or len(tgt) + 1 > max_len:
        return "too_long"
    return None


def token_batches(
    rows: Iterable[dict],
    max_tokens: int,
    max_len: int,
    pool_rows: int,
    rng: random.Random,
    dropped: Counter,
) -> Iterator[Batch]:
    """Row batches from Ray Data -> shuffled, length-sorted token-budget batches.

    rows: dicts with `src_ids`/`tgt_ids` arrays (one dict per Ray batch).
    A pair costs max(src_len, tgt_len) + 1 tokens per row of its batch.
    Dropped pairs are counted in `dropped` by reason.
    """
    pool: list[tuple[list[int], list[int]]] = []

    def flush():
        lengths = [max(len(s), len(t)) + 1 for s, t in pool]
        batches = budget_batches(lengths, max_tokens)
        rng.shuffle(batches)
        for idx in batches:
            yield make_batch([pool[i] for i in idx])

    for block in rows:
        for s, t in zip(block["src_ids"], block["tgt_ids"], strict=True):
            s, t = list(s), list(t)
            reason = filter_reason(s, t, max_len)
            if reason:
                dropped[reason] += 1
                continue
            pool.append((s, t))
        if len(pool) >= pool_rows:
            yield from flush()
            pool = []
    if pool:
        yield from flush()
