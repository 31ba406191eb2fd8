"""Beam search on a fake decoder whose per-step probabilities are written by hand.

Vocabulary: pad=0 unk=1 bos=2 eos=3 a=4 b=5. Each table maps a target prefix
to the next-token distribution; the expected scores below are products of
these numbers, checkable by hand.
"""

import math
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from model.architectures import select_rows
from model.decoding.beam import DecodeConfig, beam_search, beam_step, greedy_search, length_penalty

EOS, A, B = 3, 4, 5
NAMES = {"a": A, "b": B, "</s>": EOS}
V = 6


@dataclass
class FakeMemory:
    table: torch.Tensor  # (N,) which table each row reads


@dataclass
class FakeState:
    prefix: torch.Tensor  # (N, t) tokens fed so far, BOS first


class TableModel:
    """Next-token probabilities looked up from hand-written tables, one per sentence."""

    cfg = SimpleNamespace(pad_id=0, source_pad_id=0, bos_id=2, eos_id=3, tgt_vocab_size=V, max_positions=0)
    shares_memory_across_beams = False

    def __init__(self, tables):
        self.tables = tables
        self.calls = []  # rows decoded per step, to check that finished sentences leave the batch

    def encode(self, src):
        return FakeMemory(table=src[:, 0] - 10)  # source token 10+i selects table i

    def init_state(self, memory):
        return FakeState(prefix=torch.zeros(memory.table.numel(), 0, dtype=torch.long))

    def decode_step(self, prev, memory, state):
        prefix = torch.cat([state.prefix, prev[:, None]], dim=1)
        self.calls.append(prev.numel())
        logits = torch.full((prev.numel(), V), float("-inf"))
        for row in range(prev.numel()):
            names = {v: k for k, v in NAMES.items()}
            # Rows of dead hypotheses (score -inf) may hold any token; they are decoded but never kept.
            key = " ".join(names.get(int(t), "?") for t in prefix[row, 1:])
            table = self.tables[int(memory.table[row])]
            dist = table.get(key, table.get("*", {"</s>": 1.0}))
            for tok, p in dist.items():
                logits[row, NAMES[tok]] = math.log(p)
        return logits, FakeState(prefix)

    def reorder(self, state, index):
        return select_rows(state, index)


# Greedy takes "a" (0.6) then ends (0.5): 0.30. "b </s>" is 0.4 * 0.9 = 0.36.
GREEDY_TRAP = {
    "": {"a": 0.6, "b": 0.4},
    "a": {"</s>": 0.5, "a": 0.25, "b": 0.25},
    "b": {"</s>": 0.9, "a": 0.05, "b": 0.05},
}
# Ending at once: 0.45. "a </s>": 0.52 * 0.8 = 0.416, but per token it is better.
SHORT_VS_LONG = {
    "": {"</s>": 0.45, "a": 0.52, "b": 0.03},
    "a": {"</s>": 0.8, "a": 0.1, "b": 0.1},
}
# Never wants to stop ("*" is any prefix): ends only when the length limit forces EOS.
RAMBLER = {"*": {"a": 0.6, "b": 0.3999, "</s>": 1e-4}}


def src_for(*tables):
    return torch.tensor([[10 + i, EOS] for i in range(len(tables))])


def decode(tables, search=beam_search, **cfg):
    cfg.setdefault("max_len_a", 0.0)
    cfg.setdefault("max_len_b", 5)
    model = TableModel(tables)
    return search(model, src_for(*tables), DecodeConfig(**cfg)), model


def test_beam_finds_the_path_greedy_misses():
    (greedy,), _ = decode([GREEDY_TRAP], search=greedy_search, beam_size=1, length_penalty="none")
    assert greedy[0].tokens == [A]
    assert greedy[0].logprob == pytest.approx(math.log(0.6 * 0.5), abs=1e-6)

    (beam,), _ = decode([GREEDY_TRAP], beam_size=2, length_penalty="none", nbest=2)
    assert [h.tokens for h in beam] == [[B], [A]]
    assert [h.score for h in beam] == pytest.approx([math.log(0.36), math.log(0.30)], abs=1e-6)


@pytest.mark.parametrize(
    "penalty, alpha, best, scores",
    [
        # raw log-probabilities: the empty output (0.45) beats "a" (0.416)
        ("none", 1.0, [], [math.log(0.45), math.log(0.416)]),
        # per-token average (EOS counted): "a </s>" = log(0.416)/2 beats log(0.45)/1
        ("average", 1.0, [A], [math.log(0.416) / 2, math.log(0.45)]),
        # GNMT: lp(1) = 1, lp(2) = 7/6
        ("gnmt", 0.5, [], [math.log(0.45), math.log(0.416) / (7 / 6) ** 0.5]),
        ("gnmt", 1.0, [A], [math.log(0.416) / (7 / 6), math.log(0.45)]),
    ],
)
def test_length_penalty_changes_the_winner(penalty, alpha, best, scores):
    (hyps,), _ = decode([SHORT_VS_LONG], beam_size=2, nbest=2, min_len=0, length_penalty=penalty, alpha=alpha)
    assert hyps[0].tokens == best
    assert [h.score for h in hyps] == pytest.approx(scores, abs=1e-6)


def test_nbest_is_sorted_and_carries_raw_logprobs():
    (hyps,), _ = decode([GREEDY_TRAP], beam_size=3, nbest=3, length_penalty="average")
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    # average penalty: every hypothesis here has length 2 (token + EOS)
    for h in hyps:
        assert h.score == pytest.approx(h.logprob / (len(h.tokens) + 1), abs=1e-6)
    assert hyps[0].tokens == [B] and hyps[0].logprob == pytest.approx(math.log(0.36), abs=1e-6)


def test_min_len_forbids_early_eos():
    (hyps,), _ = decode([SHORT_VS_LONG], beam_size=2, nbest=1, min_len=1, length_penalty="none")
    assert hyps[0].tokens == [A]  # the empty output is not allowed any more


def test_max_len_forces_eos_and_keeps_its_probability():
    (hyps,), _ = decode([RAMBLER], beam_size=2, max_len_b=3, length_penalty="none")
    assert hyps[0].tokens == [A, A, A]
    # the forced EOS still costs its log-probability (1e-4)
    assert hyps[0].logprob == pytest.approx(3 * math.log(0.6) + math.log(1e-4), abs=1e-5)


def test_eos_candidates_do_not_starve_the_beam():
    # At step 1 both top candidates are EOS; the beam must still hold K=2 live hypotheses.
    table = {
        "": {"a": 0.5, "b": 0.5 - 1e-3, "</s>": 1e-3},
        "a": {"</s>": 0.6, "a": 0.4},
        "b": {"</s>": 0.6, "b": 0.4},
        "a a": {"</s>": 1.0},
        "b b": {"</s>": 1.0},
    }
    (hyps,), _ = decode([table], beam_size=2, nbest=2, length_penalty="none")
    assert [h.tokens for h in hyps] == [[A], [B]]


def test_finished_sentences_leave_the_batch():
    # Sentence 0 ends after 2 steps; sentence 1 runs to the length limit (5 tokens).
    results, model = decode([GREEDY_TRAP, RAMBLER], beam_size=2, length_penalty="none")
    assert results[0][0].tokens == [B]
    assert len(results[1][0].tokens) == 5
    assert model.calls[0] == 2  # the first step: one row per sentence (all beams are identical)
    assert model.calls[1] == 4  # then 2 sentences x 2 beams
    assert model.calls[-1] == 2  # only the rambler's beams are left
    # and the batch result equals decoding each sentence alone
    for i, table in enumerate([GREEDY_TRAP, RAMBLER]):
        (alone,), _ = decode([table], beam_size=2, length_penalty="none")
        assert alone[0].tokens == results[i][0].tokens
        assert alone[0].score == pytest.approx(results[i][0].score)


def test_beam_step_is_a_pure_top_2k():
    lprobs = torch.log(torch.tensor([[[0.1, 0.2, 0.7], [0.5, 0.4, 0.1]]]))  # (B=1, K=2, V=3)
    scores = torch.log(torch.tensor([[0.5, 0.5]]))
    s, tokens, beams = beam_step(lprobs, scores)
    assert tokens.tolist() == [[2, 0, 1, 1]]
    assert beams.tolist() == [[0, 1, 1, 0]]
    assert torch.exp(s)[0].tolist() == pytest.approx([0.35, 0.25, 0.2, 0.1])


def test_length_penalty_helper():
    assert length_penalty(-6.0, 3, "none", 1.0) == -6.0
    assert length_penalty(-6.0, 3, "average", 1.0) == -2.0
    assert length_penalty(-6.0, 3, "gnmt", 1.0) == pytest.approx(-6.0 / (8 / 6))


def test_decode_config_validates():
    with pytest.raises(ValueError):
        DecodeConfig(beam_size=2, nbest=3)
    with pytest.raises(ValueError):
        DecodeConfig(length_penalty="wu")


@pytest.mark.parametrize("vocab", [50, 1100, 8000, 8063, 32000])
@pytest.mark.parametrize("k", [1, 8, 10, 24])
def test_row_topk_is_torch_topk(vocab, k):
    from model.decoding.beam import row_topk

    gen = torch.Generator().manual_seed(vocab + k)
    x = torch.randn(9, vocab, generator=gen)
    x[1, 40:] = float("-inf")  # a row with few finite values
    x[2, -1] = 100.0  # the best value in the tail columns that the groups leave out
    k = min(k, vocab)
    values, ids = row_topk(x, k)
    expected_values, expected_ids = x.topk(k, dim=1)
    assert torch.equal(values, expected_values)
    assert torch.equal(ids[:, : min(k, 40)], expected_ids[:, : min(k, 40)])  # the -inf ties may come in any order


def test_candidates_are_log_softmax_then_top_k():
    from model.decoding.beam import _candidates

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 8000, generator=gen) * 3
    pad, bos, eos = 0, 2, 3
    logits[:, bos] = 50.0  # would win if it were not banned
    at_max = torch.tensor([False, False, False, False, True, True])
    reference = F.log_softmax(logits, dim=1)
    lprobs, tokens = _candidates(logits.clone(), 0, at_max, DecodeConfig(beam_size=4, min_len=1), (pad, bos, eos), 8)

    allowed = reference.clone()
    allowed[:, [pad, bos, eos]] = float("-inf")  # EOS too: min_len 1 at step 0
    expected, expected_tokens = allowed.topk(8, dim=1)
    assert torch.equal(tokens[:4], expected_tokens[:4])
    torch.testing.assert_close(lprobs[:4], expected[:4], rtol=0, atol=2e-6)
    # Rows at their length limit have one candidate, EOS, at its own (unconstrained) log-prob.
    assert tokens[4:, 0].tolist() == [eos, eos]
    torch.testing.assert_close(lprobs[4:, 0], reference[4:, eos], rtol=0, atol=2e-6)
    assert torch.isinf(lprobs[4:, 1:]).all()


# --- the length limit and the no-repeat guard (issue 31) ------------------------------------------------

# "a b a b ...": the pair repeats (EOS is always far worse), so only the length limit ends it. Off the loop
# any token but EOS is as good as the other.
LOOPER = {" ".join("ab"[i % 2] for i in range(t)): {"ab"[t % 2]: 0.9, "ba"[t % 2]: 0.099, "</s>": 0.001}
          for t in range(12)} | {"*": {"a": 0.5, "b": 0.499, "</s>": 0.001}}


@pytest.mark.parametrize("search, beam", [(greedy_search, 1), (beam_search, 1), (beam_search, 2), (beam_search, 3)])
def test_hypotheses_cut_at_the_length_limit_say_so(search, beam):
    """A hypothesis whose EOS the limit forced is `length_limited`; one that ended by itself is not, even when
    the other sentence of its batch was cut."""
    results, _ = decode([GREEDY_TRAP, RAMBLER], search=search, beam_size=beam, nbest=beam, length_penalty="none")
    ended, cut = results
    assert all(not h.length_limited for h in ended) and ended[0].tokens in ([A], [B])
    assert cut and all(h.length_limited and len(h.tokens) == 5 for h in cut)


def test_a_hypothesis_that_ends_one_token_before_the_limit_is_not_cut():
    table = {"*": {"a": 0.9, "b": 0.09, "</s>": 0.01}, "a a a a": {"</s>": 0.9, "a": 0.1}}
    for search in (greedy_search, beam_search):
        (hyps,), _ = decode([table], search=search, beam_size=1 if search is greedy_search else 2,
                            length_penalty="none")
        assert hyps[0].tokens == [A] * 4 and not hyps[0].length_limited


@pytest.mark.parametrize("search, beam", [(greedy_search, 1), (beam_search, 2), (beam_search, 3)])
def test_no_repeat_ngram_size_bans_the_token_that_would_repeat_an_ngram(search, beam):
    """Without the guard the loop runs to the limit; with it no hypothesis holds an n-gram twice."""
    (off,), _ = decode([LOOPER], search=search, beam_size=beam, max_len_b=8, length_penalty="none")
    assert off[0].tokens == [A, B] * 4 and off[0].length_limited
    for n in (1, 2, 3):
        (hyps,), _ = decode([LOOPER], search=search, beam_size=beam, nbest=beam, max_len_b=8, length_penalty="none",
                            no_repeat_ngram_size=n)
        for h in hyps:
            grams = [tuple(h.tokens[i:i + n]) for i in range(len(h.tokens) - n + 1)]
            assert len(grams) == len(set(grams)), (n, h.tokens)
        if search is greedy_search:
            # n=1: "a b", then both are used: EOS. n=2: "a b a", "b" would repeat "a b": "a" (0.099); then
            # "a a" and "a b" are both taken: EOS. n=3: "a b a b", then "b" (not "a": "a b a"), and on.
            assert hyps[0].tokens == {1: [A, B], 2: [A, B, A, A], 3: [A, B, A, B, B, A, A, A]}[n]
            assert hyps[0].length_limited == (n == 3)


def test_no_repeat_ngram_size_is_validated():
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        DecodeConfig(no_repeat_ngram_size=-1)


def test_repeated_ngram_bans_by_hand():
    from model.decoding.beam import repeated_ngram_bans

    history = torch.tensor([[2, 4, 5, 4], [2, 4, 4, 4], [2, 5, 4, 5]])  # start token first, V=6
    assert repeated_ngram_bans(history, 0, 6) is None
    assert repeated_ngram_bans(history, 5, 6) is None  # 4 tokens: no 5-gram can be completed yet
    # n=1: every token already there; n=2: what followed the last token before; n=3: what followed the last pair.
    assert repeated_ngram_bans(history, 1, 6).nonzero().tolist() == [[0, 2], [0, 4], [0, 5], [1, 2], [1, 4], [2, 2],
                                                                     [2, 4], [2, 5]]
    assert repeated_ngram_bans(history, 2, 6).nonzero().tolist() == [[0, 5], [1, 4], [2, 4]]
    assert repeated_ngram_bans(history, 3, 6).nonzero().tolist() == [[1, 4]]
