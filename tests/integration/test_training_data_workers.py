"""Training data split between Ray Train workers on a local Ray."""

import random
from collections import Counter

from tests.unit.test_training_data import make_pairs
from training.data import token_batches


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
