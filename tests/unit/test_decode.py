"""Bounded-memory decoding: token budgets, restored order, out-of-memory batches split and retried."""

import random

import pytest
import torch

from model.decoding import DecodeConfig, decode_cost, translate_ids
from tests.helpers import tiny_transformer


class Recording:
    """Wraps a model and records the padded source size of every batch search sees."""

    def __init__(self, model, fail_above_rows: int | None = None):
        self.model, self.cfg, self.fail_above_rows = model, model.cfg, fail_above_rows
        self.batches: list[tuple[int, int]] = []

    def encode(self, src):
        if self.fail_above_rows and src.size(0) > self.fail_above_rows:
            raise torch.cuda.OutOfMemoryError("simulated: batch too large for the device")
        self.batches.append(tuple(src.shape))
        return self.model.encode(src)

    def __getattr__(self, name):
        return getattr(self.model, name)


def sources(n, seed=0, long_every=0):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        length = 120 if long_every and i % long_every == 0 else rng.randint(1, 20)
        out.append([rng.randrange(4, 16) for _ in range(length)] + [3])
    return out


def test_every_batch_fits_the_budget_even_with_very_long_sentences():
    torch.manual_seed(0)
    model = Recording(tiny_transformer().eval())
    cfg = DecodeConfig(beam_size=4, max_len_a=0, max_len_b=3)
    src = sources(60, long_every=7)
    budget = 1200
    hyps, widths = translate_ids(model, src, cfg, max_tokens=budget)
    cost = decode_cost(cfg.beam_size)
    for rows, width in model.batches:
        assert cost(rows, width) <= budget or rows == 1
    assert len(hyps) == 60 and all(h for h in hyps)
    assert sum(widths) == sum(rows * width for rows, width in model.batches)


def test_results_come_back_in_input_order():
    torch.manual_seed(0)
    model = tiny_transformer().eval()
    cfg = DecodeConfig(beam_size=2, max_len_a=0, max_len_b=4)
    src = sources(30, seed=1)
    batched, _ = translate_ids(model, src, cfg, max_tokens=300)
    for i in (0, 7, 29):
        alone, _ = translate_ids(model, [src[i]], cfg, max_tokens=300)
        assert alone[0][0].tokens == batched[i][0].tokens


@pytest.mark.parametrize("torch_2_4", [False, True])
def test_out_of_memory_batches_are_split_and_retried(monkeypatch, torch_2_4):
    if torch_2_4:  # torch.OutOfMemoryError arrived in torch 2.5; pyproject allows 2.4
        monkeypatch.delattr(torch, "OutOfMemoryError", raising=False)
    torch.manual_seed(0)
    model = Recording(tiny_transformer().eval(), fail_above_rows=3)
    cfg = DecodeConfig(beam_size=2, max_len_a=0, max_len_b=4)
    src = sources(20, seed=2)
    hyps, _ = translate_ids(model, src, cfg, max_tokens=10_000)
    assert model.batches and all(rows <= 3 for rows, _ in model.batches)
    reference, _ = translate_ids(model.model, src, cfg, max_tokens=10_000)
    assert [h[0].tokens for h in hyps] == [h[0].tokens for h in reference]


def test_given_batches_are_decoded_as_given():
    torch.manual_seed(0)
    model = Recording(tiny_transformer().eval())
    src = sources(10, seed=3)
    fixed = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    translate_ids(model, src, DecodeConfig(beam_size=1, max_len_b=2), max_tokens=10, batches=fixed)
    assert [rows for rows, _ in model.batches] == [4, 4, 2]


class Threads(Recording):
    """Records which thread encodes each batch; each encode waits for a second stream to join in (the
    streams must overlap), or times out when there is none."""

    def __init__(self, model, fail_above_rows=None):
        super().__init__(model, fail_above_rows)
        import threading

        self.threads, self.lock, self.met = set(), threading.Lock(), threading.Barrier(2)

    def encode(self, src):
        import threading

        with self.lock:
            self.threads.add(threading.get_ident())
        try:
            self.met.wait(timeout=1.0)
        except threading.BrokenBarrierError:
            pass
        return super().encode(src)


@pytest.mark.parametrize("streams", [2, 3])
def test_streams_decode_batches_at_once_and_change_no_translation(streams):
    torch.manual_seed(0)
    model = Threads(tiny_transformer().eval())
    cfg = DecodeConfig(beam_size=3, nbest=3, max_len_a=0, max_len_b=5)
    src = sources(50, seed=4)
    hyps, widths = translate_ids(model, src, cfg, max_tokens=400, streams=streams)
    assert len(model.batches) > streams and len(model.threads) >= 2
    reference, ref_widths = translate_ids(model.model, src, cfg, max_tokens=400)
    assert [[h.tokens for h in n] for n in hyps] == [[h.tokens for h in n] for n in reference]
    assert [[h.score for h in n] for n in hyps] == [[h.score for h in n] for n in reference]
    assert widths == ref_widths


def test_streams_split_out_of_memory_batches_and_raise_other_errors():
    torch.manual_seed(0)
    model = Threads(tiny_transformer().eval(), fail_above_rows=3)
    cfg = DecodeConfig(beam_size=2, max_len_a=0, max_len_b=4)
    src = sources(20, seed=2)
    hyps, _ = translate_ids(model, src, cfg, max_tokens=10_000, streams=2)
    assert model.batches and all(rows <= 3 for rows, _ in model.batches)
    reference, _ = translate_ids(model.model, src, cfg, max_tokens=10_000)
    assert [h[0].tokens for h in hyps] == [h[0].tokens for h in reference]

    def broken(src, cfg, prefix):
        raise RuntimeError("a stream's own error")

    with pytest.raises(RuntimeError, match="own error"):
        translate_ids(model.model, src, cfg, max_tokens=200, search_batch=broken, streams=2)


@pytest.mark.parametrize("threads, asked, expected", [(1, 0, (1, 1)), (2, 0, (2, 1)), (4, 2, (2, 2)),
                                                      (2, 1, (1, 2)), (2, 5, (2, 1)), (3, 2, (2, 1))])
def test_streams_share_the_threads(threads, asked, expected):
    from model.decoding import decode_streams

    assert decode_streams(threads, asked) == expected
