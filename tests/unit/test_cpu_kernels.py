"""model.kernels.cpu_kernels: the C kernel of the CPU beam search's vocabulary-wide step gives what torch's
log_softmax and top-k give, and the search falls back to torch wherever the kernel cannot run."""

import shutil

import pytest
import torch

from model.decoding import translate_ids
from model.decoding.beam import DecodeConfig, row_topk
from model.kernels import cpu_kernels
from tests.helpers import random_sources, tiny_transformer

needs_kernel = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                  reason="no C compiler")
ULP = dict(rtol=2.5e-7, atol=2e-6)  # float rounding: ~1 ulp of a log-probability


def torch_candidates(logits, k, banned, eos):
    lprobs = torch.log_softmax(logits, dim=1)
    eos_lprob = lprobs[:, eos].clone()
    lprobs[:, banned] = float("-inf")
    values, tokens = row_topk(lprobs, k) if k > 1 else lprobs.max(dim=1, keepdim=True)
    return values, tokens, eos_lprob


def distinct_logits(rows: int, vocab: int, seed: int) -> torch.Tensor:
    """Logits whose values differ by far more than float rounding, so the k best are unambiguous."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.rand(rows, 1, generator=g) * 0.01 + 0.002  # peaked and flat rows
    return torch.stack([torch.randperm(vocab, generator=g) for _ in range(rows)]).float() * scale - 5


@needs_kernel
@pytest.mark.parametrize("vocab", [8000, 1003, 37])  # the vector body, a ragged tail, tail only
@pytest.mark.parametrize("k", [1, 8, 10])
def test_the_kernel_gives_torchs_candidates(vocab, k):
    assert cpu_kernels.available()
    logits = distinct_logits(23, vocab, seed=vocab + k)
    logits[3, 11] = float("-inf")  # a token a model's bias rules out (as Marian's pad)
    banned, eos = [0, 2], 1
    values, tokens, eos_lprob = cpu_kernels.candidates(logits, k, banned, eos)
    ref_values, ref_tokens, ref_eos = torch_candidates(logits.clone(), k, banned, eos)
    assert torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(values, ref_values, **ULP)
    torch.testing.assert_close(eos_lprob, ref_eos, **ULP)
    assert not torch.isin(tokens, torch.tensor(banned)).any()
    assert bool((values[:, :-1] >= values[:, 1:]).all())  # best first


@needs_kernel
def test_ties_keep_the_lower_column_and_banned_tokens_never_win():
    logits = torch.zeros(2, 64)
    logits[0, [5, 9, 40]] = 3.0  # three equal best
    logits[1, 0] = 50.0  # the banned token is the row's best by far: it still normalises the row
    values, tokens, eos_lprob = cpu_kernels.candidates(logits, 2, [0], 63)
    assert tokens[0].tolist() == [5, 9]
    assert values[0, 0] == values[0, 1]
    assert 0 not in tokens[1].tolist()
    torch.testing.assert_close(eos_lprob, torch.log_softmax(logits, 1)[:, 63], **ULP)


@needs_kernel
@pytest.mark.parametrize("beam", [1, 4])
def test_the_search_decodes_alike_with_the_kernel_and_with_torch(monkeypatch, beam):
    torch.manual_seed(0)
    model = tiny_transformer(64).eval()
    srcs = [s + [3] for s in random_sources(30, 64, 1, 12, seed=4)]
    cfg = DecodeConfig(beam_size=beam, nbest=beam, min_len=2)
    fast, _ = translate_ids(model, srcs, cfg, max_tokens=600)
    calls = []
    real = cpu_kernels.candidates
    monkeypatch.setattr(cpu_kernels, "candidates", lambda *a: calls.append(real(*a)) or calls[-1])
    translate_ids(model, srcs[:2], cfg, max_tokens=600)
    assert calls and all(c is not None for c in calls)  # the kernel is the path a 1-thread CPU search takes
    monkeypatch.setattr(cpu_kernels, "candidates", lambda *a: None)
    slow, _ = translate_ids(model, srcs, cfg, max_tokens=600)
    assert [[h.tokens for h in n] for n in fast] == [[h.tokens for h in n] for n in slow]
    for a, b in zip(fast, slow, strict=True):
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)


def test_torch_runs_where_the_kernel_does_not_apply():
    logits = torch.randn(4, 100)
    assert cpu_kernels.candidates(logits, 99, [0, 1], 2) is None  # fewer allowed tokens than k
    assert cpu_kernels.candidates(logits[:0], 4, [0], 2) is None
    if torch.cuda.is_available():
        assert cpu_kernels.candidates(logits.cuda(), 4, [0], 2) is None


@pytest.mark.parametrize("setting", ["disabled", "no compiler", "failed build"])
def test_no_kernel_means_torch_not_an_error(monkeypatch, tmp_path, setting):
    monkeypatch.setenv("NMT_KERNEL_CACHE", str(tmp_path))
    if setting == "disabled":
        monkeypatch.setenv("NMT_CPU_KERNELS", "0")
    elif setting == "no compiler":
        monkeypatch.delenv("CC", raising=False)
        monkeypatch.setattr(shutil, "which", lambda name: None)
    else:
        monkeypatch.setenv("CC", shutil.which("false") or "/bin/false")
    cpu_kernels._library.cache_clear()
    try:
        assert not cpu_kernels.available()
        assert cpu_kernels.candidates(torch.randn(3, 50), 4, [0], 1) is None
        torch.manual_seed(1)
        hyps, _ = translate_ids(tiny_transformer(32).eval(), [[5, 6, 3]], DecodeConfig(beam_size=2), 100)
        assert hyps[0]
        assert not list(tmp_path.glob("*.so"))
    finally:
        cpu_kernels._library.cache_clear()
