"""Length-sorted, token-budget batching shared by training and translation.

Padding is wasted compute: a batch costs (rows x longest row), so rows of
similar length go together and a batch is sized by tokens, not sentences
(fairseq's --max-tokens, Marian's mini-batch-words). Translation also sorts
inside each actor call and restores the caller's order afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch


def pad_batch(
    seqs: Sequence[Sequence[int]], pad_id: int, prefix: int | None = None, suffix: int | None = None
) -> torch.Tensor:
    """Right-pad id lists into a (B, L) LongTensor, optionally adding a first/last token to each."""
    extra = (prefix is not None) + (suffix is not None)
    width = max((len(s) for s in seqs), default=0) + extra
    out = torch.full((len(seqs), max(width, 1)), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        row = ([prefix] if prefix is not None else []) + list(s) + ([suffix] if suffix is not None else [])
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def budget_batches(
    lengths: Sequence[int],
    max_tokens: int,
    max_rows: int | None = None,
    cost: Callable[[int, int], int] | None = None,
) -> list[list[int]]:
    """Split indices into batches of similar length whose cost stays under `max_tokens`.

    lengths: one length per item. cost(rows, longest) is the padded size of a
    batch (default rows * longest). Items are sorted by length (stable, so equal
    lengths keep their order) and packed greedily; an item too long for the
    budget on its own still gets a batch of one, so nothing is ever dropped here.
    Returns lists of original indices; every index appears exactly once.
    """
    cost = cost or (lambda rows, longest: rows * longest)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted ascending, so the newcomer is the longest so far.
        if current and (cost(len(current) + 1, lengths[i]) > max_tokens or (max_rows and len(current) >= max_rows)):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def least_padding_batches(
    lengths: Sequence[int],
    max_tokens: int,
    overhead: float,
    cost: Callable[[int, int], int] | None = None,
) -> list[list[int]]:
    """Like `budget_batches`, but cut where it wastes least: the partition of the sorted items into
    contiguous batches that minimises padded tokens + `overhead` per batch, under the same budget.

    Greedy filling makes the fewest batches but lets a batch of short sentences span
    lengths 8..15, half of it padding, when a handful of rows could start a new batch
    at 12. With few sentences per length (an actor call of a thousand rows spread over
    a hundred lengths) that is the larger part of the waste. `overhead` is what one
    more batch costs, in padded tokens; the search is an exact dynamic programme over
    the sorted lengths (O(n x rows per batch), vectorised).
    """
    cost = cost or (lambda rows, longest: rows * longest)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    s = np.asarray([lengths[i] for i in order], dtype=np.float64)
    n = len(order)
    best = np.zeros(n + 1)  # best[j]: least objective for the first j sorted items
    cut = np.zeros(n + 1, dtype=np.int64)  # cut[j]: where the last batch of that solution starts
    for j in range(1, n + 1):
        longest = int(s[j - 1])
        # Most rows a batch ending at item j may hold: cost grows with rows, so binary search.
        lo, hi = 1, j
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if cost(mid, longest) <= max_tokens else (lo, mid - 1)
        starts = np.arange(j - lo, j)  # the batch is sorted items [i, j)
        total = best[starts] + (j - starts) * s[j - 1] + overhead
        k = int(np.argmin(total))  # on ties the first: the earliest start, i.e. the larger batch
        best[j], cut[j] = total[k], starts[k]
    batches = []
    j = n
    while j:
        batches.append(order[cut[j]:j])
        j = int(cut[j])
    return batches[::-1]

