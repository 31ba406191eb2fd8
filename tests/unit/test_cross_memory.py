"""The Transformer's two encoder memories decode alike: the RowMemory read in place by the C kernel (CPU,
fp32) and the TransformerMemory read by torch (everywhere else); and the kernel computes cross-attention."""

import shutil

import pytest
import torch

from model.architectures import select_rows
from model.architectures.cross_memory import RowMemory, TransformerMemory
from model.decoding import DecodeConfig, pad_batch, prepare_for_decoding, search
from model.kernels import cpu_kernels
from model.tokenizers import EOS_ID, PAD_ID
from tests.helpers import random_sources, tiny_transformer

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
VOCAB = 24
CLOSE = dict(atol=1e-5, rtol=1e-5)


def reference(q, kt, v, rows, lengths):
    """q (G*P, D); kt (B, H, d, S); v (B, H, S, d) -> (G*P, D), masked softmax attention in torch."""
    B, H, d, S = kt.shape
    G = rows.numel()
    P = q.size(0) // G
    out = []
    for g in range(G):
        b, t = int(rows[g]), int(lengths[rows[g]])
        qg = q[g * P:(g + 1) * P].view(P, H, d).transpose(0, 1)  # (H, P, d)
        p = (qg @ kt[b, :, :, :t] * d ** -0.5).softmax(-1)  # (H, P, t)
        out.append((p @ v[b, :, :t]).transpose(0, 1).reshape(P, H * d))
    return torch.cat(out)


@pytest.mark.parametrize("heads, d", [(4, 64), (8, 64), (2, 24), (1, 3)])  # vector body; 8-wide + tail; tail only
@pytest.mark.parametrize("per", [1, 4, 5, 9])  # a group's queries: one block, a full block, blocks and a tail
@pytest.mark.parametrize("threads", [1, 2])
def test_the_kernel_attends_as_torch_does(heads, d, per, threads):
    torch.manual_seed(0)
    B, S = 5, 19
    kt, v = torch.randn(B, heads, d, S), torch.randn(B, heads, S, d)
    lengths = torch.tensor([19, 1, 8, 17, 12], dtype=torch.int32)  # full, one position, 8-wide blocks, tails
    rows = torch.tensor([3, 0, 4, 1], dtype=torch.int32)  # sentences left in any order, one finished
    q = torch.randn(rows.numel() * per, heads * d + 5)[:, :heads * d]  # a strided row view, as from a product
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = cpu_kernels.cross_attention(q, kt, v, rows, lengths)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(out, reference(q, kt, v, rows, lengths), atol=2e-6, rtol=1e-5)


def test_the_kernel_refuses_shapes_that_do_not_fit():
    kt, v = torch.zeros(2, 2, 4, 3), torch.zeros(2, 2, 3, 4)
    rows, lengths = torch.zeros(2, dtype=torch.int32), torch.ones(2, dtype=torch.int32)
    with pytest.raises(ValueError):
        cpu_kernels.cross_attention(torch.zeros(3, 8), kt, v, rows, lengths)  # 3 rows in 2 groups
    with pytest.raises(ValueError):
        cpu_kernels.cross_attention(torch.zeros(2, 8), kt, v.transpose(2, 3), rows, lengths)  # not (B, H, S, d)
    with pytest.raises(ValueError):
        cpu_kernels.cross_attention(torch.zeros(2, 8), kt, v, rows, lengths.long())


def batch(n=6):
    src = pad_batch(random_sources(n, VOCAB, 1, 9, seed=3), PAD_ID, suffix=EOS_ID)
    tgt = pad_batch(random_sources(n, VOCAB, 3, 7, seed=4), PAD_ID, prefix=2)
    return src, tgt


def decode_steps(model, memory, tgt):
    state, steps = model.init_state(memory), []
    for t in range(tgt.size(1)):
        logits, state = model.decode_step(tgt[:, t], memory, state)
        steps.append(logits)
    return torch.stack(steps, dim=1)


@pytest.mark.parametrize("pre_norm", [False, True], ids=["post-norm", "pre-norm"])
def test_row_memory_is_taken_on_cpu_and_decodes_as_the_torch_layout(pre_norm):
    torch.manual_seed(0)
    model = prepare_for_decoding(tiny_transformer(VOCAB, pre_norm=pre_norm).eval())
    src, tgt = batch()
    with torch.no_grad():
        memory = model.encode(src)
        assert isinstance(memory, RowMemory)
        assert memory.lengths.tolist() == src.ne(PAD_ID).sum(1).tolist()
        torch_layout = TransformerMemory(src.ne(PAD_ID), tuple(kt.transpose(-1, -2) for kt in memory.cross_kt),
                                         memory.cross_v)
        torch.testing.assert_close(decode_steps(model, memory, tgt), decode_steps(model, torch_layout, tgt), **CLOSE)
        # Teacher forcing in eval mode: every target position's queries at once, Tq > 1.
        full = model(src, tgt)
        model.train()
        torch.testing.assert_close(full, model(src, tgt), **CLOSE)  # dropout is 0 in the tiny model
        assert isinstance(model.encode(src), TransformerMemory)


def test_finished_sentences_leave_the_index_and_nothing_is_copied():
    torch.manual_seed(0)
    model = prepare_for_decoding(tiny_transformer(VOCAB).eval())
    src, tgt = batch()
    keep = torch.tensor([4, 1, 2])
    with torch.no_grad():
        memory = model.encode(src)
        narrowed = select_rows(memory, keep)
        assert narrowed.rows.tolist() == [4, 1, 2] and narrowed.sentences == 3
        assert all(a is b for a, b in zip(narrowed.cross_kt, memory.cross_kt, strict=True))
        twice = select_rows(narrowed, torch.tensor([2, 0]))
        assert twice.rows.tolist() == [2, 4]
        alone = model.encode(src[[2, 4]][:, :src.size(1)])  # the same sentences encoded as their own batch
        torch.testing.assert_close(decode_steps(model, twice, tgt[[2, 4]]), decode_steps(model, alone, tgt[[2, 4]]),
                                   **CLOSE)


def test_a_batch_padded_elsewhere_than_at_the_end_keeps_the_torch_layout():
    torch.manual_seed(0)
    model = tiny_transformer(VOCAB).eval()
    src, _ = batch()
    left = torch.stack([torch.cat([row[row.eq(PAD_ID)], row[row.ne(PAD_ID)]]) for row in src])  # pads first
    assert not torch.equal(left, src)
    with torch.no_grad():
        assert isinstance(model.encode(left), TransformerMemory)
        assert isinstance(model.encode(src), RowMemory)


@pytest.mark.parametrize("beam", [1, 4])
def test_search_finds_the_same_nbest_with_either_memory(monkeypatch, beam):
    torch.manual_seed(1)
    model = prepare_for_decoding(tiny_transformer(VOCAB, d_model=64).eval())
    src = pad_batch(random_sources(12, VOCAB, 1, 12, seed=5), PAD_ID, suffix=EOS_ID)
    cfg = DecodeConfig(beam_size=beam, nbest=beam, max_len_a=1.5, max_len_b=3)
    fast = search(model, src, cfg)
    monkeypatch.setattr(RowMemory, "of", staticmethod(lambda memory: None))
    assert isinstance(model.encode(src), TransformerMemory)
    slow = search(model, src, cfg)
    assert [[h.tokens for h in n] for n in fast] == [[h.tokens for h in n] for n in slow]
    assert [h.score for n in fast for h in n] == pytest.approx([h.score for n in slow for h in n], abs=1e-4)
