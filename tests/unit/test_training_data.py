"""Token-budget training batches, exactly once per epoch across workers (through real Ray Data)."""

import random
from collections import Counter

import numpy as np
import pytest

from model.tokenizers import EOS_ID, PAD_ID
from training.data import filter_reason, token_batches
from training.state import inverse_sqrt_lr


def rows_of(pairs, block=7):
    def arr(seqs):
        out = np.empty(len(seqs), dtype=object)
        for i, s in enumerate(seqs):
            out[i] = np.asarray(s, dtype=np.int32)
        return out

    for i in range(0, len(pairs), block):
        chunk = pairs[i : i + block]
        yield {"src_ids": arr([s for s, _ in chunk]), "tgt_ids": arr([t for _, t in chunk])}


def make_pairs(n, seed=0):
    rng = random.Random(seed)
    # every pair carries its index as the first token so batches can be traced back
    return [([1000 + i] + [5] * rng.randint(0, 30), [7] * rng.randint(1, 30)) for i in range(n)]


def test_batches_stay_under_budget_and_see_every_pair_once():
    pairs = make_pairs(300)
    dropped = Counter()
    seen = []
    for batch in token_batches(rows_of(pairs), max_tokens=128, max_len=64, pool_rows=50,
                               rng=random.Random(0), dropped=dropped):
        rows, width = batch.src.shape
        assert rows * max(width, batch.tgt_in.size(1)) <= 128
        assert (batch.src[:, -1].eq(EOS_ID) | batch.src[:, -1].eq(PAD_ID)).all()
        seen += batch.src[:, 0].tolist()
    assert sorted(seen) == [1000 + i for i in range(300)]
    assert not dropped


def test_bad_pairs_are_dropped_and_counted():
    pairs = [([], []), ([5], []), ([], [5]), ([5] * 100, [6]), ([5], [6] * 100), ([5, 6], [7])]
    dropped = Counter()
    batches = list(token_batches(rows_of(pairs), 1000, max_len=50, pool_rows=10, rng=random.Random(0),
                                 dropped=dropped))
    assert sum(b.src.size(0) for b in batches) == 1
    assert dropped == {"empty": 1, "one_side_empty": 2, "too_long": 2}


@pytest.mark.parametrize("src, tgt, reason", [([], [], "empty"), ([1], [], "one_side_empty"),
                                              ([1] * 10, [1], "too_long"), ([1], [1], None)])
def test_filter_reason(src, tgt, reason):
    assert filter_reason(src, tgt, max_len=10) == reason


def test_inverse_sqrt_schedule():
    assert inverse_sqrt_lr(50, 1e-3, 100) == pytest.approx(5e-4)
    assert inverse_sqrt_lr(100, 1e-3, 100) == pytest.approx(1e-3)
    assert inverse_sqrt_lr(400, 1e-3, 100) == pytest.approx(5e-4)
