"""Bounded-memory decoding: token budgets, restored order, out-of-memory batches split and retried."""

import random

import pytest
import torch

from model.search import DecodeConfig
from pipeline.decode import decode_cost, translate_ids
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
