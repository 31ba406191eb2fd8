"""Translate many tokenized sentences with bounded memory: sort, pack under a token budget, decode, unsort.

Shared by the translation actors and by validation during training.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from functools import partial

import torch

from model.search import DecodeConfig, Hypothesis, search
from pipeline.batching import least_padding_batches, pad_batch

# torch.OutOfMemoryError exists from torch 2.5 only; torch.cuda.OutOfMemoryError (torch >= 1.13) is the
# same class there, and the one torch 2.4 raises.
DEVICE_OUT_OF_MEMORY = torch.cuda.OutOfMemoryError


def prepare_for_decoding(model):
    """`model` after the inference-only rewrites its family offers (`fuse_for_decoding`: the Transformer's
    fused q/k/v products), in place; for the actors, never for a model that trains on."""
    fuse = getattr(model, "fuse_for_decoding", None)
    if fuse is not None:
        fuse()
    return model


def decode_cost(beam: int, target_ratio: float = 1.0):
    """Padded size of a batch during beam search: every row is expanded to `beam` hypotheses,
    each holding the source memory plus a target that grows to ~ratio x source length."""

    def cost(rows: int, longest: int) -> int:
        return int(rows * beam * (longest + target_ratio * longest))

    return cost


def token_budget_batches(lengths: Sequence[int], beam: int, max_tokens: int) -> list[list[int]]:
    """Length-sorted batches whose decoding cost stays under `max_tokens`, cut where they waste least."""
    cost = decode_cost(beam)
    # One more sub-batch pays off when it saves more padding than 1/12 of a full one would hold
    # (the per-step overhead of the decoding loop). At that price the number of batches stays
    # within a few percent of greedy filling while padding falls by a third to a half.
    overhead = max_tokens / cost(1, 1) / 12
    return least_padding_batches(lengths, max_tokens, overhead, cost=cost)


def translate_ids(
    model,
    src_ids: Sequence[Sequence[int]],
    cfg: DecodeConfig,
    max_tokens: int,
    device: torch.device | str = "cpu",
    batches: list[list[int]] | None = None,
    prefixes: Sequence[Sequence[int]] | None = None,
    search_batch: Callable | None = None,
) -> tuple[list[list[Hypothesis]], list[int]]:
    """Decode id lists (each ending in EOS) and return hypotheses in the input order.

    Sentences are sorted by length and cut into batches so that rows x beam x
    (source + expected target) stays under `max_tokens` with the least padding:
    one long sentence gets a small batch instead of inflating a large one. A batch that still runs out of
    accelerator memory is split in two and retried, down to single sentences.
    Also returns each sentence's padded width (its batch's longest source), whose
    sum is the padded token count.

    `batches` (lists of indices) replaces the token-budget batching; benchmarks use it to
    measure other batching schemes with the same decoder.

    `prefixes` (one id list per sentence, all of one length) are target tokens forced after the start
    token: multilingual models' target-language token, so rows of different target languages share batches.

    `search_batch(src, cfg, prefix)` decodes one padded batch (default: model.search.search on `model`);
    another engine (pipeline/ct2_engine.py) plugs in here and keeps the batching, order and retries.
    """
    if batches is None:
        batches = token_budget_batches([len(s) for s in src_ids], cfg.beam_size, max_tokens)
    pad_id = model.cfg.source_pad_id
    if search_batch is None:
        search_batch = partial(search, model)
    results: list[list[Hypothesis] | None] = [None] * len(src_ids)
    widths = [0] * len(src_ids)
    pending = deque(batches)
    while pending:
        idx = pending.popleft()
        src = pad_batch([src_ids[i] for i in idx], pad_id)
        prefix = None
        if prefixes is not None and len(prefixes[idx[0]]):
            prefix = torch.tensor([list(prefixes[i]) for i in idx], dtype=torch.long, device=device)
        try:
            hyps = search_batch(src.to(device), cfg, prefix)
        except DEVICE_OUT_OF_MEMORY:
            if len(idx) == 1:
                raise
            torch.cuda.empty_cache()
            half = len(idx) // 2
            pending.extendleft([idx[half:], idx[:half]])
            continue
        for i, h in zip(idx, hyps, strict=True):
            results[i], widths[i] = h, src.size(1)
    return results, widths
