"""Both architectures behind one decoding interface: caching, batching, search (that they learn:
tests/integration/test_learning.py)."""

import pytest
import torch

from model.decoding import pad_batch
from model.decoding.beam import DecodeConfig, Ensemble, beam_search, greedy_search
from model.tokenizers import EOS_ID, PAD_ID
from tests.helpers import random_sources, tiny_rnn, tiny_transformer

VOCAB = 16
RNN_VARIANTS = [
    dict(cell=cell, attention=attn, bidirectional=bidi, reverse_source=rev)
    for cell in ("lstm", "gru")
    for attn in ("none", "bahdanau", "luong_dot", "luong_general")
    for bidi, rev in ((True, False), (False, True))
] + [  # Luong's input feeding: the attentional vector travels in the decoder state
    dict(cell=cell, attention=attn, bidirectional=True, reverse_source=False, input_feeding=True)
    for cell in ("lstm", "gru")
    for attn in ("luong_dot", "luong_general")
]
MODELS = [("transformer", lambda: tiny_transformer(VOCAB))] + [
    (
        f"rnn-{v['cell']}-{v['attention']}-bi{int(v['bidirectional'])}-rev{int(v['reverse_source'])}"
        + ("-feed" if v.get("input_feeding") else ""),
        lambda v=v: tiny_rnn(VOCAB, **v),
    )
    for v in RNN_VARIANTS
]


def make(factory, seed=0):
    torch.manual_seed(seed)
    return factory().eval()


def mixed_batch():
    seqs = random_sources(5, VOCAB, 1, 9, seed=3)
    return seqs, pad_batch(seqs, PAD_ID, suffix=EOS_ID)


@pytest.mark.parametrize("name, factory", MODELS, ids=[n for n, _ in MODELS])
def test_incremental_decoding_equals_full_recomputation(name, factory):
    model = make(factory)
    _, src = mixed_batch()
    tgt = pad_batch(random_sources(5, VOCAB, 3, 7, seed=4), PAD_ID, prefix=2)
    with torch.no_grad():
        full = model(src, tgt)  # (B, T, V)
        memory = model.encode(src)
        state = model.init_state(memory)
        steps = []
        for t in range(tgt.size(1)):
            logits, state = model.decode_step(tgt[:, t], memory, state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name, factory", MODELS, ids=[n for n, _ in MODELS])
def test_rows_reordered_twice_between_steps_decode_as_that_batch_from_the_start(name, factory):
    """Search reorders the state's rows (and may do so twice before the next step: an ensemble, a
    caller); the rows then continue exactly as if that batch had been decoded from the start."""
    from model.architectures import select_rows

    model = make(factory)
    _, src = mixed_batch()
    tgt = pad_batch(random_sources(5, VOCAB, 5, 7, seed=4), PAD_ID, prefix=2)
    first, then = torch.tensor([4, 0, 0, 2, 1, 3]), torch.tensor([1, 5, 2, 2, 0])
    rows = first[then]
    with torch.no_grad():
        expected = model(src[rows], tgt[rows])[:, 3:]
        memory = model.encode(src)
        state = model.init_state(memory)
        for t in range(3):
            _, state = model.decode_step(tgt[:, t], memory, state)
        state = model.reorder(model.reorder(state, first), then)
        memory = select_rows(memory, rows)
        steps = []
        for t in range(3, tgt.size(1)):
            logits, state = model.decode_step(tgt[rows, t], memory, state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, dim=1), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name, factory", MODELS, ids=[n for n, _ in MODELS])
def test_sentence_alone_equals_sentence_in_padded_batch(name, factory):
    model = make(factory)
    seqs, src = mixed_batch()
    cfg = DecodeConfig(beam_size=3, max_len_a=1.0, max_len_b=3, nbest=3)
    batched = beam_search(model, src, cfg)
    for i, s in enumerate(seqs):
        alone = beam_search(model, pad_batch([s], PAD_ID, suffix=EOS_ID), cfg)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in batched[i]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in batched[i]], abs=1e-4)


@pytest.mark.parametrize("name, factory", MODELS[:3], ids=[n for n, _ in MODELS[:3]])
def test_beam_size_one_equals_greedy(name, factory):
    model = make(factory)
    _, src = mixed_batch()
    cfg = DecodeConfig(beam_size=1, max_len_b=4)
    beam = beam_search(model, src, cfg)
    greedy = greedy_search(model, src, cfg)
    assert [h[0].tokens for h in beam] == [h[0].tokens for h in greedy]
    assert [h[0].score for h in beam] == pytest.approx([h[0].score for h in greedy], abs=1e-5)


def test_ensemble_of_one_equals_the_model_and_members_matter():
    a, b = make(MODELS[0][1], seed=0), make(MODELS[0][1], seed=1)
    _, src = mixed_batch()
    cfg = DecodeConfig(beam_size=3, max_len_b=4, nbest=2)
    alone = beam_search(a, src, cfg)
    one = beam_search(Ensemble([a]), src, cfg)
    assert [[h.tokens for h in x] for x in one] == [[h.tokens for h in x] for x in alone]
    assert [x[0].score for x in one] == pytest.approx([x[0].score for x in alone], abs=1e-5)
    # Two different members: the step log-probs are the mean of theirs.
    ens = Ensemble([a, b])
    mem, prev = ens.encode(src), torch.full((src.size(0),), 2)
    lp, _ = ens.decode_step(prev, mem, ens.init_state(mem))
    la = torch.log_softmax(a.decode_step(prev, mem[0], a.init_state(mem[0]))[0], -1)
    lb = torch.log_softmax(b.decode_step(prev, mem[1], b.init_state(mem[1]))[0], -1)
    torch.testing.assert_close(lp, (la + lb) / 2)


def test_ensemble_rejects_mismatched_vocabularies():
    with pytest.raises(ValueError, match="vocabularies"):
        Ensemble([tiny_transformer(16), tiny_transformer(20)])
    # the same target vocabulary is not enough: the source side must match too
    same_target = dict(share_embeddings=False, tie_output=False, tgt_vocab_size=16)
    with pytest.raises(ValueError, match="source and target vocabularies"):
        Ensemble([tiny_transformer(16, **same_target), tiny_transformer(20, **same_target)])


def test_input_feeding_changes_the_model_and_needs_luong_attention():
    from model.architectures import RNNConfig

    with pytest.raises(ValueError, match="input_feeding needs Luong attention"):
        RNNConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, attention="bahdanau", input_feeding=True)
    # Same weights where the shapes agree: the fed vector must change what the decoder computes.
    plain = make(lambda: tiny_rnn(VOCAB, attention="luong_general"))
    fed = make(lambda: tiny_rnn(VOCAB, attention="luong_general", input_feeding=True))
    assert fed.decoder.input_size == plain.decoder.input_size + fed.cfg.emb_dim
    _, src = mixed_batch()
    tgt = pad_batch(random_sources(5, VOCAB, 3, 7, seed=4), PAD_ID, prefix=2)
    with torch.no_grad():
        memory = fed.encode(src)
        state = fed.init_state(memory)
        assert state.feed.shape == (src.size(0), fed.cfg.emb_dim) and not state.feed.any()
        zeroed = fed(src, tgt)
        # Zero the feed's input weights: the decoder then ignores the fed vector.
        weights = [n for n, _ in fed.decoder.named_parameters() if n.startswith("weight_ih_l0")]
        for name in weights:
            getattr(fed.decoder, name)[:, fed.cfg.emb_dim:] = 0
        ignored = fed(src, tgt)
    assert not torch.allclose(zeroed[:, 1:], ignored[:, 1:])
    torch.testing.assert_close(zeroed[:, 0], ignored[:, 0])  # step 0 is fed zeros either way


def test_reverse_source_reverses_before_the_eos():
    from model.architectures.rnn import reverse_padded

    src = torch.tensor([[5, 6, 7, 3], [8, 9, 3, 0]])
    out = reverse_padded(src, src.ne(0).sum(1))
    assert out.tolist() == [[7, 6, 5, 3], [9, 8, 3, 0]]


def test_beams_sharing_one_memory_row_equal_a_copy_per_beam():
    """The Transformer's beams read one copy of their sentence's encoder keys/values (cross-attention
    queries grouped per sentence); the search gives every other model a copy per beam. Both agree."""
    model = make(MODELS[0][1])
    _, src = mixed_batch()
    cfg = DecodeConfig(beam_size=3, max_len_a=1.0, max_len_b=3, nbest=3)
    assert model.shares_memory_across_beams
    shared = beam_search(model, src, cfg)
    model.shares_memory_across_beams = False
    copies = beam_search(model, src, cfg)
    assert [[h.tokens for h in x] for x in shared] == [[h.tokens for h in x] for x in copies]
    assert [h.score for x in shared for h in x] == pytest.approx([h.score for x in copies for h in x], abs=1e-5)
    # An ensemble shares only when every member does: a recurrent member needs the copies.
    mixed = Ensemble([make(MODELS[0][1]), make(MODELS[1][1])])
    assert not mixed.shares_memory_across_beams
    assert len(beam_search(mixed, src, cfg)) == src.size(0)


@pytest.mark.parametrize("layer", [0, -1])
def test_cross_attention_is_the_layers_own_attention_heads_averaged(monkeypatch, layer):
    """Transformer.cross_attention (alignment for inline markup) returns what the chosen decoder layer's
    cross-attention computes in a plain teacher-forced forward, read off its queries and keys there."""
    from model.architectures.transformer import MultiHeadAttention
    from model.kernels import cpu_kernels

    model = make(lambda: tiny_transformer(VOCAB))
    seqs, src = mixed_batch()
    tgt = torch.tensor([[2] + [5 + (i + j) % 9 for j in range(6)] for i in range(len(seqs))])
    cross = model.decoder[layer].cross_attn
    seen = {}
    original = MultiHeadAttention.attend_queries

    def spy(self, q, k, v, mask):
        if self is cross:
            scores = (q @ k.transpose(-1, -2)) / q.size(-1) ** 0.5
            seen["w"] = scores.masked_fill(~mask, float("-inf")).softmax(-1).mean(1)
        return original(self, q, k, v, mask)

    monkeypatch.setattr(MultiHeadAttention, "attend_queries", spy)
    monkeypatch.setattr(cpu_kernels, "apply_to", lambda tensor: False)  # torch's attention, where the spy sees it
    with torch.no_grad():
        model(src, tgt)
        got = model.cross_attention(src, tgt, layer)
    assert got.shape == (len(seqs), tgt.size(1), src.size(1))
    torch.testing.assert_close(got, seen["w"])
    assert torch.equal(got.argmax(-1), seen["w"].argmax(-1))
    assert torch.all(got.masked_select(~src.ne(PAD_ID)[:, None, :].expand_as(got)) == 0)  # padding: none
    torch.testing.assert_close(got.sum(-1), torch.ones(got.shape[:2]))


def test_an_rnn_gives_no_cross_attention():
    model = make(MODELS[1][1])
    _, src = mixed_batch()
    assert model.cross_attention(src, torch.tensor([[2, 5, 6]] * src.size(0))) is None
