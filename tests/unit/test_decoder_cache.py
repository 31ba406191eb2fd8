"""The Transformer's two self-attention caches decode alike: the StepCache read in place by the C kernel
(CPU, fp32) and the gathered TransformerState (everywhere else); and the kernel computes attention."""

import copy
import shutil

import pytest
import torch

import model.architectures.transformer as transformer
from model.architectures import select_rows
from model.architectures.decoder_cache import StepCache, TransformerState
from model.decoding import pad_batch, prepare_for_decoding
from model.decoding.beam import DecodeConfig, beam_search
from model.kernels import cpu_kernels, quantize_int8
from model.tokenizers import EOS_ID, PAD_ID
from tests.helpers import random_sources, tiny_transformer

needs_kernel = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                  reason="no C compiler")
VOCAB = 24
CLOSE = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture
def gathered(monkeypatch):
    """Transformers built while this is active take the gathered cache, as without the kernels."""
    monkeypatch.setattr(transformer.cpu_kernels, "available", lambda: False)


def reference_attention(q, keys, values, ancestry, heads):
    """q (N, D); keys/values: per step (rows, D); ancestry (N, T) -> (N, D), by gathering in torch."""
    N, D = q.shape
    d = D // heads
    k = torch.stack([keys[s][ancestry[:, s].long()] for s in range(len(keys))], 1)  # (N, T, D)
    v = torch.stack([values[s][ancestry[:, s].long()] for s in range(len(values))], 1)
    split = lambda t: t.view(N, -1, heads, d).transpose(1, 2)  # noqa: E731  (N, H, T, d)
    scores = split(k) @ q.view(N, heads, d, 1) * d ** -0.5  # (N, H, T, 1)
    return (scores.softmax(2).transpose(2, 3) @ split(v)).reshape(N, D)


@needs_kernel
@pytest.mark.parametrize("heads, d", [(4, 64), (8, 64), (2, 12), (1, 3)])  # vector body; ragged; tail only
@pytest.mark.parametrize("threads", [1, 2])
def test_the_kernel_attends_as_torch_does(heads, d, threads):
    g = torch.Generator().manual_seed(heads * d)
    D = heads * d
    rows = [5, 9, 9, 9, 6, 6, 6]  # the batch widens, then sentences finish
    fused = [torch.randn(n, 3 * D, generator=g) * 2 for n in rows]  # one (q | k | v) product per step
    keys = [f[:, D:2 * D] for f in fused]
    values = [f[:, 2 * D:] for f in fused]
    ancestry = torch.stack([torch.randint(0, n, (6,), generator=g, dtype=torch.int32) for n in rows], 1)
    ancestry[:, -1] = torch.arange(6, dtype=torch.int32)  # each row's newest position is its own
    q = fused[-1][:, :D]
    address = lambda ts: torch.tensor([t.data_ptr() for t in ts])  # noqa: E731
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = cpu_kernels.step_attention(q, address(keys), address(values), 3 * D, 3 * D, ancestry, heads)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(out, reference_attention(q, keys, values, ancestry, heads), atol=2e-6, rtol=1e-5)


def steps_and_full(model, src, tgt):
    with torch.no_grad():
        memory = model.encode(src)
        state = model.init_state(memory)
        steps = []
        for t in range(tgt.size(1)):
            logits, state = model.decode_step(tgt[:, t], memory, state)
            steps.append(logits)
        return torch.stack(steps, dim=1), model(src, tgt), state


def batch(n=5):
    src = pad_batch(random_sources(n, VOCAB, 1, 9, seed=3), PAD_ID, suffix=EOS_ID)
    tgt = pad_batch(random_sources(n, VOCAB, 3, 7, seed=4), PAD_ID, prefix=2)
    return src, tgt


@needs_kernel
@pytest.mark.parametrize("fused", [False, True], ids=["three-products", "one-product"])
@pytest.mark.parametrize("pre_norm", [False, True], ids=["post-norm", "pre-norm"])
def test_the_step_cache_is_taken_on_cpu_and_equals_the_full_recomputation(fused, pre_norm):
    torch.manual_seed(0)
    model = tiny_transformer(VOCAB, pre_norm=pre_norm).eval()
    if fused:
        model = prepare_for_decoding(model)
    src, tgt = batch()
    steps, full, state = steps_and_full(model, src, tgt)
    assert isinstance(state, StepCache) and state.ancestry.shape == tgt.shape
    torch.testing.assert_close(steps, full, **CLOSE)


def test_training_and_the_fallback_take_the_gathered_cache(gathered):
    torch.manual_seed(0)
    model = tiny_transformer(VOCAB).eval()
    steps, full, state = steps_and_full(model, *batch())
    assert isinstance(state, TransformerState)
    torch.testing.assert_close(steps, full, **CLOSE)
    memory = model.train().encode(batch()[0])
    assert isinstance(model.init_state(memory), TransformerState)


@needs_kernel
def test_a_second_step_from_an_earlier_state_leaves_the_first_branch_intact():
    """The StepCache's per-layer logs are shared and appended to; stepping twice from one state (a
    caller exploring two continuations) must not let one branch overwrite what the other reads."""
    torch.manual_seed(0)
    model = tiny_transformer(VOCAB).eval()
    src, tgt = batch()
    other = tgt.clone()
    other[:, 3:] = (other[:, 3:] + 1) % VOCAB
    with torch.no_grad():
        memory = model.encode(src)
        state = model.init_state(memory)
        for t in range(3):
            _, state = model.decode_step(tgt[:, t], memory, state)
        # The branches step in turn, so each appends to the logs between the other's steps.
        names, seqs = ["a", "b", "a again"], [tgt, other, tgt]
        states, steps = [state] * 3, [[], [], []]
        for t in range(3, tgt.size(1)):
            for i, seq in enumerate(seqs):
                logits, states[i] = model.decode_step(seq[:, t], memory, states[i])
                steps[i].append(logits)
        branches = {name: torch.stack(s, 1) for name, s in zip(names, steps, strict=True)}
        torch.testing.assert_close(branches["a"], model(src, tgt)[:, 3:], **CLOSE)
        torch.testing.assert_close(branches["b"], model(src, other)[:, 3:], **CLOSE)
        torch.testing.assert_close(branches["a again"], branches["a"], atol=0, rtol=0)


@needs_kernel
def test_reordered_rows_continue_as_that_batch_from_the_start():
    torch.manual_seed(0)
    model = tiny_transformer(VOCAB).eval()
    src, tgt = batch(6)
    first, then = torch.tensor([4, 0, 0, 2, 1, 3, 5, 5]), torch.tensor([1, 5, 2, 7, 0])
    rows = first[then]
    with torch.no_grad():
        memory = model.encode(src)
        state = model.init_state(memory)
        for t in range(3):
            _, state = model.decode_step(tgt[:, t], memory, state)
        state = model.reorder(model.reorder(state, first), then)
        assert isinstance(state, StepCache)
        memory, steps = select_rows(memory, rows), []
        for t in range(3, tgt.size(1)):
            logits, state = model.decode_step(tgt[rows, t], memory, state)
            steps.append(logits)
        torch.testing.assert_close(torch.stack(steps, 1), model(src[rows], tgt[rows])[:, 3:], **CLOSE)


@needs_kernel
def test_the_kernel_refuses_an_ancestry_that_does_not_fit():
    q = torch.randn(3, 8)
    address = torch.tensor([q.data_ptr()])
    with pytest.raises(ValueError):
        cpu_kernels.step_attention(q, address, address, 8, 8, torch.zeros(2, 1, dtype=torch.int32), 2)
    with pytest.raises(ValueError):
        cpu_kernels.step_attention(q, address, address, 8, 8, torch.zeros(3, 2, dtype=torch.int32), 2)


def nbest(model, src):
    cfg = DecodeConfig(beam_size=4, nbest=4, max_len_a=1.0, max_len_b=5)
    return beam_search(model, src, cfg)


@needs_kernel
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_beam_search_finds_the_same_nbest_with_either_cache(monkeypatch, precision):
    torch.manual_seed(1)
    model = prepare_for_decoding(tiny_transformer(VOCAB, d_model=64).eval())
    if precision == "int8":
        model = quantize_int8(copy.deepcopy(model))
    src = pad_batch(random_sources(12, VOCAB, 1, 12, seed=5), PAD_ID, suffix=EOS_ID)
    fast = nbest(model, src)
    monkeypatch.setattr(transformer.cpu_kernels, "available", lambda: False)
    slow = nbest(model, src)
    assert [[h.tokens for h in n] for n in fast] == [[h.tokens for h in n] for n in slow]
    assert [h.score for n in fast for h in n] == pytest.approx([h.score for n in slow for h in n], abs=1e-4)
