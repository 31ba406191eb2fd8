"""A GPU actor's decoding token budget, sized from the memory it may use and what its model needs.

A CPU actor's budget (24,000) is the batch size its decoding runs fastest at. On a GPU larger batches
keep running faster until memory runs out, and what a budget token costs depends on the model (layers,
width, vocabulary), the precision, the beam and the engine. So each GPU actor measures it: it decodes
one small batch of synthetic inputs to its full length, reads how much device memory that took, and
divides the memory its share of the GPU leaves by it. A batch that still does not fit is split by
translate_ids (model/decoding/batched.py); the budget keeps that the exception.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.decoding import DecodeConfig, decode_cost

# The probe: rows of PROBE_LENGTH source tokens, each decoded to exactly PROBE_LENGTH target tokens.
# Short rows are the expensive case per budget token (the vocabulary-wide logits are per row), so the
# measured price holds for longer inputs too.
PROBE_ROWS = 64
PROBE_LENGTH = 16
# Of the memory the actor's share leaves: the rest absorbs fragmentation in the caching allocator and
# estimates that are off (Python-side buffers, the encoder's source x source attention of long inputs).
USABLE = 0.6
CONTEXT_RESERVE = 1 << 30  # a process's CUDA context and library workspaces (cuBLAS, cuDNN), not in torch's stats


@dataclass(frozen=True)
class BudgetMeasure:
    bytes_per_token: float  # device memory per budget token, measured
    available: int  # bytes the actor's share leaves after the model
    budget: int


def budget_from(bytes_per_token: float, available: int, beam: int, longest: int = 256) -> int:
    """The token budget `available` bytes hold at `bytes_per_token`; never below one row of `longest`
    source tokens (the batching gives any sentence a batch of its own anyway)."""
    floor = decode_cost(beam)(1, longest)
    return max(floor, int(USABLE * available / max(bytes_per_token, 1.0)))


def available_memory(share: float, free: int, total: int, held: int) -> int:
    """Bytes an actor may still take: its share (`--gpus-per-actor`, 1 = the whole GPU) of the GPU's
    `total`, less what it holds already (`held`: its model) and a context reserve, and never more than
    is `free` now (other actors on the same GPU may have started first)."""
    mine = int(share * total) - held - CONTEXT_RESERVE
    return max(0, min(free, mine))


def measure_budget(search_batch, cfg: DecodeConfig, device: torch.device, share: float, model_cfg,
                   special: int = 4) -> BudgetMeasure:
    """Decode the probe on `device` through `search_batch(src, cfg, prefix)` and size the budget.

    Memory is read two ways, and the larger kept: torch's own peak (exact for our engine) and the fall
    in the device's free memory (what another engine's allocator, such as CTranslate2's, took).
    """
    rows, length = PROBE_ROWS, PROBE_LENGTH
    # The no-repeat guard's bans (rows x vocabulary, one byte each per step) are part of what is measured.
    probe = DecodeConfig(beam_size=cfg.beam_size, nbest=1, length_penalty=cfg.length_penalty, alpha=cfg.alpha,
                         min_len=length, max_len_a=0.0, max_len_b=length,
                         no_repeat_ngram_size=cfg.no_repeat_ngram_size)
    # Full rows of ordinary tokens (ids from `special` up, never the source padding), each ending in EOS.
    generator = torch.Generator().manual_seed(0)
    src = torch.randint(special, max(model_cfg.src_vocab_size, special + 1), (rows, length), generator=generator)
    src[src == model_cfg.source_pad_id] = special
    src[:, -1] = model_cfg.eos_id
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    held = torch.cuda.memory_allocated(device)
    free_before, total = torch.cuda.mem_get_info(device)
    search_batch(src.to(device), probe, None)
    torch.cuda.synchronize(device)
    free_after, _ = torch.cuda.mem_get_info(device)
    used = max(torch.cuda.max_memory_allocated(device) - held, free_before - free_after, 1)
    per_token = used / decode_cost(cfg.beam_size)(rows, length)
    torch.cuda.empty_cache()
    available = available_memory(share, torch.cuda.mem_get_info(device)[0], total, torch.cuda.memory_reserved(device))
    return BudgetMeasure(per_token, available, budget_from(per_token, available, cfg.beam_size))
