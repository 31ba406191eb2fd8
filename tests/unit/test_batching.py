import random

import pytest

from model.decoding import budget_batches, least_padding_batches, pad_batch


def padded_cost(lengths) -> int:
    """Tokens a batch occupies once padded: rows x longest row."""
    return len(lengths) * max(lengths, default=0)


def padding_efficiency(batches, lengths) -> float:
    """Real tokens / padded tokens over a set of batches (1.0 means no padding)."""
    real = sum(lengths[i] for b in batches for i in b)
    padded = sum(padded_cost([lengths[i] for i in b]) for b in batches)
    return real / padded if padded else 1.0


def test_pad_batch_adds_prefix_suffix_and_pads():
    out = pad_batch([[5, 6], [7]], pad_id=0, prefix=2, suffix=3)
    assert out.tolist() == [[2, 5, 6, 3], [2, 7, 3, 0]]


@pytest.mark.parametrize("budget", [16, 50, 200])
def test_budget_batches_respect_the_budget_and_cover_every_item_once(budget):
    rng = random.Random(budget)
    lengths = [rng.randint(1, 40) for _ in range(500)]
    batches = budget_batches(lengths, budget)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(lengths)))
    for b in batches:
        cost = padded_cost([lengths[i] for i in b])
        assert cost <= budget or len(b) == 1  # a single over-long item still gets its own batch


def test_an_item_longer_than_the_budget_is_kept_alone():
    batches = budget_batches([3, 100, 4], max_tokens=20)
    assert [1] in batches
    assert sorted(i for b in batches for i in b) == [0, 1, 2]


def test_length_sorting_beats_input_order_on_padding():
    rng = random.Random(0)
    lengths = [rng.choice([3, 5, 40]) + rng.randint(0, 3) for _ in range(1000)]
    sorted_eff = padding_efficiency(budget_batches(lengths, 400), lengths)
    fixed = [list(range(i, min(i + 32, len(lengths)))) for i in range(0, len(lengths), 32)]
    assert sorted_eff > 0.9 > padding_efficiency(fixed, lengths)


def test_max_rows_and_custom_cost():
    batches = budget_batches([2] * 10, max_tokens=1000, max_rows=3)
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    beam_cost = lambda rows, longest: rows * 4 * 2 * longest  # noqa: E731
    assert all(beam_cost(len(b), 5) <= 100 for b in budget_batches([5] * 9, 100, cost=beam_cost))


def _objective(batches, lengths, overhead):
    return sum(padded_cost([lengths[i] for i in b]) for b in batches) + overhead * len(batches)


@pytest.mark.parametrize("seed", range(4))
def test_least_padding_batches_keep_the_budget_and_beat_greedy_filling(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(2, 60) for _ in range(rng.choice([1, 7, 300, 1000]))]
    cost = lambda rows, longest: rows * 5 * 2 * longest  # noqa: E731  (the beam-5 decoding cost)
    greedy = budget_batches(lengths, 12000, cost=cost)
    ours = least_padding_batches(lengths, 12000, overhead=100, cost=cost)
    assert sorted(i for b in ours for i in b) == list(range(len(lengths)))
    assert all(cost(len(b), max(lengths[i] for i in b)) <= 12000 for b in ours)
    # Greedy filling is one feasible partition, so the optimum can only be as good or better.
    assert _objective(ours, lengths, 100) <= _objective(greedy, lengths, 100)
    if len(lengths) >= 300:
        # At least a third of greedy filling's padding goes, for at most a quarter more batches.
        assert 1 - padding_efficiency(ours, lengths) < (2 / 3) * (1 - padding_efficiency(greedy, lengths))
        assert len(ours) <= 1.25 * len(greedy)


def test_least_padding_batches_are_optimal_on_a_small_case():
    # Sorted lengths 2,2,3,10,10 under a 30-token budget: every contiguous split checked by hand.
    # With overhead 5 the best is [2,2,3] [10,10]: padded 9 + 20, two batches -> 39
    # ([2,2] [3] [10,10] pads 4 + 3 + 20 = 27 but pays 15 for three batches -> 42).
    lengths = [10, 2, 3, 10, 2]
    batches = least_padding_batches(lengths, 30, overhead=5)
    assert [sorted(lengths[i] for i in b) for b in batches] == [[2, 2, 3], [10, 10]]
    # With no overhead, padding alone decides: three batches, none padded.
    batches = least_padding_batches(lengths, 30, overhead=0)
    assert [sorted(lengths[i] for i in b) for b in batches] == [[2, 2], [3], [10, 10]]


def test_least_padding_batches_keep_long_items_alone():
    batches = least_padding_batches([3, 100, 4], 20, overhead=1)
    assert [1] in batches and sorted(i for b in batches for i in b) == [0, 1, 2]
