"""A GPU actor's token budget: the arithmetic here; the measurement itself on a GPU (gpu-marked)."""

import pytest

from model.decoding import decode_cost
from pipeline.runtime.gpu_budget import CONTEXT_RESERVE, USABLE, available_memory, budget_from

GIB = 2**30


def test_an_actor_takes_its_share_of_the_gpu_less_what_it_holds():
    # Alone on a 140 GiB GPU with half of it reserved: its half, less its model and a context reserve.
    assert available_memory(0.5, free=139 * GIB, total=140 * GIB, held=2 * GIB) == 70 * GIB - 2 * GIB - CONTEXT_RESERVE
    # The whole GPU, but another process already holds most of it: only what is free.
    assert available_memory(1.0, free=10 * GIB, total=140 * GIB, held=2 * GIB) == 10 * GIB
    assert available_memory(0.01, free=10 * GIB, total=8 * GIB, held=2 * GIB) == 0  # nothing left: never negative


def test_the_budget_is_what_the_usable_memory_holds_at_the_measured_price():
    assert budget_from(10_000.0, 100 * GIB, beam=5) == int(USABLE * 100 * GIB / 10_000)
    # Never below one row of a long source: the batching gives such a sentence a batch of its own.
    assert budget_from(10_000.0, 0, beam=5, longest=256) == decode_cost(5)(1, 256)
    assert budget_from(0.0, GIB, beam=4) == pytest.approx(USABLE * GIB, rel=1e-9)  # a zero price is not a division
