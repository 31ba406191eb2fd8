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


def test_two_workers_split_an_epoch_exactly_once(local_ray):
    """Ray Data's streaming split to 2 consumers, each batching locally: the union is the epoch."""
    import threading

    import ray.data

    pairs = make_pairs(500, seed=1)
    ds = ray.data.from_items([{"src_ids": s, "tgt_ids": t} for s, t in pairs], override_num_blocks=8)
    shards = ds.streaming_split(2, equal=False)
    seen = [[], []]

    def consume(rank):
        rows = shards[rank].iter_batches(batch_size=32, batch_format="numpy")
        for b in token_batches(rows, 200, 64, 64, random.Random(rank), Counter()):
            assert b.src.numel() <= 200 or b.src.size(0) == 1
            seen[rank] += b.src[:, 0].tolist()

    threads = [threading.Thread(target=consume, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen[0] + seen[1]) == [1000 + i for i in range(500)]
    assert seen[0] and seen[1]
