"""Translate many tokenized sentences with bounded memory: sort, pack under a token budget, decode, unsort.

Shared by the translation actors and by validation during training.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import torch

from model.decoding.batching import least_padding_batches, pad_batch
from model.decoding.beam import DecodeConfig, Hypothesis, search


class EngineOutOfMemory(RuntimeError):
    """A batch did not fit in an engine's device memory; raised by engines that report it otherwise
    (CTranslate2 raises a plain RuntimeError), so translate_ids splits the batch as it does torch's."""


# torch.OutOfMemoryError exists from torch 2.5 only; torch.cuda.OutOfMemoryError (torch >= 1.13) is the
# same class there, and the one torch 2.4 raises.
DEVICE_OUT_OF_MEMORY = (torch.cuda.OutOfMemoryError, EngineOutOfMemory)


def prepare_for_decoding(model):
    """`model` after the inference-only rewrites its family offers (`fuse_for_decoding`: the Transformer's
    fused q/k/v products), in place; for the actors, never for a model that trains on."""
    model.fuse_for_decoding()
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
    streams: int = 1,
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

    `search_batch(src, cfg, prefix)` decodes one padded batch (default: model.decoding.beam.search on `model`);
    another engine (pipeline/runtime/ct2_engine.py) plugs in here and keeps the batching, order and retries.

    `streams` > 1 decodes that many batches at once, each on its own Python thread, all through the one
    `model` (a CPU actor's threads; see `decode_streams`). Every batch is decoded as it would be alone, so
    the translations do not change.
    """
    if batches is None:
        batches = token_budget_batches([len(s) for s in src_ids], cfg.beam_size, max_tokens)
    pad_id = model.cfg.source_pad_id
    if search_batch is None:
        search_batch = partial(search, model)
    results: list[list[Hypothesis] | None] = [None] * len(src_ids)
    widths = [0] * len(src_ids)
    pending = deque(batches)
    lock = threading.Lock()  # around `pending`: streams take batches from it and put split ones back

    def decode_pending():
        while True:
            with lock:
                if not pending:
                    return
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
                if torch.cuda.is_initialized():
                    torch.cuda.empty_cache()  # the failed batch's cached blocks, for the halves
                half = len(idx) // 2
                with lock:
                    pending.extendleft([idx[half:], idx[:half]])
                continue
            for i, h in zip(idx, hyps, strict=True):  # each stream writes only its own batch's slots
                results[i], widths[i] = h, src.size(1)

    workers = min(streams, len(batches))
    if workers <= 1:
        decode_pending()
    else:
        for done in [_stream_pool(workers).submit(decode_pending) for _ in range(workers)]:
            done.result()  # a stream's error is the call's error
    return results, widths


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _stream_pool(workers: int) -> ThreadPoolExecutor:
    """One pool of stream threads per size, kept for the process: an actor decodes call after call, and
    libraries keep per-thread buffers (BLAS scratch space, malloc arenas) that a new thread per call
    would allocate anew each time."""
    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="decode")
        return pool


def decode_streams(threads: int, streams: int) -> tuple[int, int]:
    """(streams, torch threads per stream) for a CPU decoder of `threads` torch threads; `streams` 0: one
    per thread.

    On CPU a decoding step's products are small (one row per live beam): split over 2 torch threads they
    ran ~1.6x faster than on one, while 2 batches decoded at once, one thread each, ran 1.09x (captions)
    to 1.17x (inputs of ~45 tokens) faster than that, int8 1.15x (the shipped model, 2 cores,
    interleaved runs in one process), through one copy of the model. Each stream holds its own batch; the
    2-stream process still peaked lower (563 MB against 688 MB on captions: no oneDNN primitives).
    """
    streams = max(1, min(streams or threads, threads))
    return streams, max(1, threads // streams)
