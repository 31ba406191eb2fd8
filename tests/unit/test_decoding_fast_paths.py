"""The Transformer's decoding fast paths change no translation: fused self-attention projections (one
q/k/v product, fp32 and int8), and cross-attention keys/values laid out for the step's products."""

import copy

import pytest
import torch
from torch import nn

from model.decoding import pad_batch, prepare_for_decoding, translate_ids
from model.decoding.beam import DecodeConfig, beam_search
from model.kernels import quantize_int8
from model.tokenizers import EOS_ID, PAD_ID
from pipeline.runtime import for_cpu_decoding
from tests.helpers import random_sources, tiny_rnn, tiny_transformer

VOCAB = 24


def fused_pair(**overrides):
    torch.manual_seed(0)
    model = tiny_transformer(VOCAB, **overrides).eval()
    return model, prepare_for_decoding(copy.deepcopy(model))


@pytest.mark.parametrize("pre_norm", [False, True], ids=["post-norm", "pre-norm"])
def test_one_product_gives_the_logits_and_beams_of_three(pre_norm):
    model, fused = fused_pair(pre_norm=pre_norm)
    for layer in (*fused.encoder, *fused.decoder):
        attn = layer.self_attn
        assert attn.qkv.out_features == 3 * attn.qkv.in_features
        assert not any(hasattr(attn, name) for name in ("q_proj", "k_proj", "v_proj"))
    for layer in fused.decoder:  # cross-attention's queries and keys come from different inputs
        assert layer.cross_attn.qkv is None and hasattr(layer.cross_attn, "q_proj")

    srcs = random_sources(6, VOCAB, 1, 9, seed=3)
    src = pad_batch(srcs, PAD_ID, suffix=EOS_ID)
    tgt = pad_batch(random_sources(6, VOCAB, 3, 7, seed=4), PAD_ID, prefix=2)
    with torch.no_grad():
        torch.testing.assert_close(fused(src, tgt), model(src, tgt), atol=1e-5, rtol=1e-5)
        # Step by step through the cache equals the full recomputation, as for the unfused model.
        memory = fused.encode(src)
        state = fused.init_state(memory)
        steps = []
        for t in range(tgt.size(1)):
            logits, state = fused.decode_step(tgt[:, t], memory, state)
            steps.append(logits)
        torch.testing.assert_close(torch.stack(steps, dim=1), model(src, tgt), atol=1e-5, rtol=1e-5)

    cfg = DecodeConfig(beam_size=4, nbest=4, max_len_a=1.0, max_len_b=4)
    ours, theirs = beam_search(fused, src, cfg), beam_search(model, src, cfg)
    assert [[h.tokens for h in n] for n in ours] == [[h.tokens for h in n] for n in theirs]
    assert [h.score for n in ours for h in n] == pytest.approx([h.score for n in theirs for h in n], abs=1e-5)


def test_int8_quantizes_the_fused_product_and_decodes_alike():
    """One q/k/v input quantized once, with the same per-output-channel weight scales as the three
    layers had: the int8 translations do not change."""
    model, _ = fused_pair()
    int8_fused = for_cpu_decoding(copy.deepcopy(model), "int8", "torch", 1)
    int8_plain = quantize_int8(model)
    qkv = int8_fused.decoder[0].self_attn.qkv
    assert type(qkv) is not nn.Linear and "quantized" in type(qkv).__module__
    srcs = [s + [EOS_ID] for s in random_sources(20, VOCAB, 1, 10, seed=5)]
    cfg = DecodeConfig(beam_size=3, nbest=2)
    ours, _ = translate_ids(int8_fused, srcs, cfg, max_tokens=500)
    theirs, _ = translate_ids(int8_plain, srcs, cfg, max_tokens=500)
    assert [[h.tokens for h in n] for n in ours] == [[h.tokens for h in n] for n in theirs]


def test_fusing_twice_is_once_and_other_families_are_left_alone():
    _, fused = fused_pair()
    weights = {k: v.clone() for k, v in fused.state_dict().items()}
    prepare_for_decoding(fused)
    assert fused.state_dict().keys() == weights.keys()
    assert all(torch.equal(v, weights[k]) for k, v in fused.state_dict().items())

    rnn = tiny_rnn(VOCAB).eval()
    keys = list(rnn.state_dict())
    assert prepare_for_decoding(rnn) is rnn and list(rnn.state_dict()) == keys


def test_cross_attention_memory_is_laid_out_for_decoding_and_left_as_projected_in_training(monkeypatch):
    """The torch layout (GPU, half precision, no C compiler; architectures/cross_memory.py's TransformerMemory)."""
    from model.kernels import cpu_kernels

    monkeypatch.setattr(cpu_kernels, "available", lambda: False)
    torch.manual_seed(0)
    model = tiny_transformer(VOCAB)
    src = pad_batch(random_sources(4, VOCAB, 2, 9, seed=6), PAD_ID, suffix=EOS_ID)
    memory = model.eval().encode(src)
    B, S = src.shape
    H, d = model.cfg.n_heads, model.cfg.d_model // model.cfg.n_heads
    for k, v in zip(memory.cross_k, memory.cross_v, strict=True):
        assert k.shape == v.shape == (B, H, S, d)
        # On CPU q @ k^T and p @ v read them without a copy.
        assert k.transpose(-1, -2).is_contiguous() and v.is_contiguous()
    trained = model.train().encode(src)  # views of the projections: training stays bit-identical
    assert not any(t.is_contiguous() for t in (*trained.cross_k, *trained.cross_v))
    for a, b in zip((*memory.cross_k, *memory.cross_v), (*trained.cross_k, *trained.cross_v), strict=True):
        assert torch.equal(a, b)


def test_a_gpu_memory_keeps_the_head_dimension_contiguous():
    """scaled_dot_product_attention's fused CUDA kernels need keys and values with stride 1 in the head
    dimension; the CPU layout (keys transposed in memory) would send every step to the math kernel. The
    meta device stands in for a GPU: it has strides, not data."""
    from model.architectures.cross_memory import decoding_layout

    k, v = (torch.empty(2, 5, 4, 3, device="meta").transpose(1, 2) for _ in range(2))  # heads of (B, S, D)
    gk, gv = decoding_layout(k, v)
    assert gk.stride(-1) == gv.stride(-1) == 1 and gk.is_contiguous() and gv.is_contiguous()
    ck, cv = decoding_layout(*(torch.zeros(2, 5, 4, 3).transpose(1, 2) for _ in range(2)))
    assert ck.stride(-1) != 1 and ck.transpose(-1, -2).is_contiguous() and cv.is_contiguous()
