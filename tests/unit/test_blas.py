"""pipeline.runtime.blas: the vocabulary projection through OpenBLAS, and every linear layer through oneDNN, decode
what torch's own products decode."""

import copy
import os

import pyarrow as pa
import pytest
import torch
from threadpoolctl import threadpool_info

from model.decoding import DecodeConfig, translate_ids
from pipeline.runtime.blas import (
    OneDNNLinear,
    OpenBLASLinear,
    numpy_blas,
    onednn_available,
    resolve_cpu_blas,
    use_onednn,
    use_openblas,
)
from pipeline.settings import CPU_BLAS, ComputeConfig
from tests.conftest import ROOT
from tests.helpers import random_sources, tiny_rnn, tiny_transformer

needs_openblas = pytest.mark.skipif(numpy_blas() != "openblas", reason="numpy is not built with OpenBLAS")
needs_onednn = pytest.mark.skipif(not onednn_available(), reason="torch is not built with oneDNN")
VOCAB = 64  # the models' target vocabulary: the one layer that moves


@needs_openblas
@pytest.mark.parametrize("make", [tiny_transformer, tiny_rnn], ids=["transformer", "rnn"])
def test_the_projection_and_encoding_move_and_decoding_is_unchanged(make):
    """The vocabulary projection and (Transformer) every product `encode` runs move; a decoding step's
    layer products stay in torch."""
    torch.manual_seed(0)
    model = make(VOCAB).eval()
    reference = copy.deepcopy(model)
    encoding = [f"encoder.{n}" for n, m in model.encoder.named_modules() if isinstance(m, torch.nn.Linear)
                ] if make is tiny_transformer else []
    cross = [f"decoder.{i}.cross_attn.{p}" for i in range(len(model.decoder)) for p in ("k_proj", "v_proj")
             ] if make is tiny_transformer else []
    assert use_openblas(model) == 1 + len(encoding) + len(cross)
    moved = [name for name, m in model.named_modules() if isinstance(m, OpenBLASLinear)]
    assert sorted(moved) == sorted(["output", *encoding, *cross])
    assert make is tiny_rnn or len(encoding) >= 4 * len(model.encoder)  # q, k, v, out and the FFN's two
    assert not any(".self_attn." in n or ".ffn." in n or "cross_attn.q_proj" in n for n in moved
                   if n.startswith("decoder."))
    # A tied embedding keeps its table: the moved layer holds a transposed copy of it.
    assert torch.equal(model.tgt_embed.weight, reference.tgt_embed.weight)

    srcs = [s + [3] for s in random_sources(24, VOCAB, 1, 9, seed=1)]
    cfg = DecodeConfig(beam_size=3, nbest=3)
    with torch.inference_mode():
        x = torch.randn(5, 7, model.output.in_features)
        torch.testing.assert_close(model.output(x), reference.output(x), rtol=1e-5, atol=1e-5)
    ours, _ = translate_ids(model, srcs, cfg, max_tokens=400)
    theirs, _ = translate_ids(reference, srcs, cfg, max_tokens=400)
    assert [[h.tokens for h in n] for n in ours] == [[h.tokens for h in n] for n in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-4)


@needs_openblas
def test_a_sentence_alone_decodes_as_inside_a_padded_batch():
    torch.manual_seed(2)
    model = tiny_transformer(VOCAB).eval()
    use_openblas(model)
    srcs = [s + [3] for s in random_sources(16, VOCAB, 1, 12, seed=3)]
    cfg = DecodeConfig(beam_size=4)
    batched, _ = translate_ids(model, srcs, cfg, max_tokens=10_000)
    for i in (0, 7, 15):
        alone, _ = translate_ids(model, [srcs[i]], cfg, max_tokens=10_000)
        assert alone[0][0].tokens == batched[i][0].tokens
        assert alone[0][0].score == pytest.approx(batched[i][0].score, abs=1e-5)


@needs_openblas
def test_openblas_runs_on_the_calling_thread_only():
    use_openblas(tiny_transformer(VOCAB).eval())
    assert {p["num_threads"] for p in threadpool_info() if p["internal_api"] == "openblas"} == {1}


def test_choices_resolve_per_machine(monkeypatch):
    import pipeline.runtime.blas as blas

    assert ComputeConfig().cpu_blas == "auto" and set(CPU_BLAS) == {"auto", "torch", "openblas", "onednn"}
    assert resolve_cpu_blas("torch") == "torch"
    with pytest.raises(ValueError, match="cpu_blas must be one of"):
        resolve_cpu_blas("mkl")
    monkeypatch.setattr(blas, "numpy_blas", lambda: "openblas")
    monkeypatch.setattr(blas, "onednn_available", lambda: True)
    monkeypatch.setattr(blas, "cpu_flags", lambda: {"avx2", "fma"})
    for vendor, one, two in (("AuthenticAMD", "openblas", "onednn"), ("GenuineIntel", "torch", "torch"),
                             ("", "torch", "torch")):
        monkeypatch.setattr(blas, "cpu_vendor", lambda vendor=vendor: vendor)
        assert resolve_cpu_blas("auto") == one
        # OpenBLAS's pool would compete with torch's threads; oneDNN runs on them.
        assert resolve_cpu_blas("auto", threads=2) == two
    # AVX-512 AMD cores: oneDNN at one thread too (MKL keeps AVX2 code on AMD; oneDNN dispatches by ISA).
    monkeypatch.setattr(blas, "cpu_flags", lambda: {"avx2", "fma", "avx512f"})
    monkeypatch.setattr(blas, "cpu_vendor", lambda: "AuthenticAMD")
    assert resolve_cpu_blas("auto") == resolve_cpu_blas("auto", threads=2) == "onednn"
    monkeypatch.setattr(blas, "cpu_vendor", lambda: "GenuineIntel")
    assert resolve_cpu_blas("auto") == "torch"
    monkeypatch.setattr(blas, "cpu_vendor", lambda: "AuthenticAMD")
    monkeypatch.setattr(blas, "onednn_available", lambda: False)
    assert resolve_cpu_blas("auto") == "openblas" and resolve_cpu_blas("auto", threads=2) == "torch"
    monkeypatch.setattr(blas, "onednn_available", lambda: True)
    monkeypatch.setattr(blas, "numpy_blas", lambda: "mkl")
    monkeypatch.setattr(blas, "onednn_available", lambda: False)
    monkeypatch.setattr(blas, "cpu_vendor", lambda: "AuthenticAMD")
    assert resolve_cpu_blas("auto") == resolve_cpu_blas("auto", threads=2) == "torch"
    with pytest.raises(ValueError, match="needs numpy built with OpenBLAS"):
        resolve_cpu_blas("openblas")
    with pytest.raises(ValueError, match="needs torch built with oneDNN"):
        resolve_cpu_blas("onednn")


@needs_openblas
def test_the_translation_actor_decodes_alike_with_either_blas():
    """The shipped model through the actor: --cpu-blas openblas and torch give the same translations."""
    from pipeline.columns import HYP_IDS
    from pipeline.io import read_table
    from pipeline.stages import Tokenize, Translator

    root = ROOT
    model = os.path.join(root, "models", "multi30k-en-de")
    sample = read_table(os.path.join(root, "samples", "multi30k-en-de"))
    table = pa.table({"id": list(range(60)), "source": sample.column("source").to_pylist()[:60]})
    tokenized = Tokenize(model, "source", 256, "split", {})(table)
    out = {}
    choices = ("torch", "openblas") + (("onednn",) if onednn_available() else ())
    for blas in choices:
        actor = Translator(model, DecodeConfig(beam_size=4), "fp32", 12000, 1, {}, cpu_blas=blas)
        layers = [type(m).__name__ for m in actor.model.modules()]
        assert ("OpenBLASLinear" in layers) == (blas == "openblas")
        assert ("Linear" in layers) == (blas != "onednn")  # oneDNN takes every fp32 linear layer
        out[blas] = actor(tokenized).column(HYP_IDS).to_pylist()
    assert all(out[blas] == out["torch"] for blas in choices)


@needs_onednn
def test_onednn_keeps_a_small_primitive_cache_unless_the_user_sized_it(monkeypatch):
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    use_onednn(tiny_rnn(VOCAB))
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "8"
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "512")
    use_onednn(tiny_rnn(VOCAB))
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "512"


@needs_onednn
@pytest.mark.parametrize("make", [tiny_transformer, tiny_rnn], ids=["transformer", "rnn"])
def test_every_linear_layer_moves_to_onednn_and_decoding_is_unchanged(make):
    torch.manual_seed(0)
    model = make(VOCAB).eval()
    reference = copy.deepcopy(model)
    linear = [name for name, m in model.named_modules() if type(m) is torch.nn.Linear]
    assert use_onednn(model) == len(linear) > 1
    assert [name for name, m in model.named_modules() if isinstance(m, OneDNNLinear)] == linear
    assert torch.equal(model.tgt_embed.weight, reference.tgt_embed.weight)  # tied output: a packed copy
    with torch.inference_mode():
        x = torch.randn(5, 7, model.output.in_features)
        torch.testing.assert_close(model.output(x), reference.output(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(copy.deepcopy(model).output(x), model.output(x), rtol=0, atol=0)

    srcs = [s + [3] for s in random_sources(24, VOCAB, 1, 9, seed=1)]
    cfg = DecodeConfig(beam_size=3, nbest=3)
    ours, _ = translate_ids(model, srcs, cfg, max_tokens=400)
    theirs, _ = translate_ids(reference, srcs, cfg, max_tokens=400)
    assert [[h.tokens for h in n] for n in ours] == [[h.tokens for h in n] for n in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-4)
    # oneDNN computes each row on its own: a sentence decodes alike alone and in a batch.
    alone, _ = translate_ids(model, [srcs[5]], cfg, max_tokens=400)
    assert alone[0][0].tokens == ours[5][0].tokens
    assert alone[0][0].score == pytest.approx(ours[5][0].score, abs=1e-5)
