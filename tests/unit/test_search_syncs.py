"""The searches read the device once per step (model/decoding/beam.py's module docstring says why) and find
exactly what reading each value where it is needed found.

`reference_beam_search` and `reference_greedy_search` below are the searches as they were before,
reading hypotheses, scores and row indices from tensors one by one: the new ones must return the same
hypotheses, bit for bit (token ids, and scores compared as floats with ==).

On CPU, host reads are counted by wrapping the torch calls that read device values on the host (or
copy host data to the device) and keeping those made from model/decoding/beam.py's own lines. On a GPU
(`gpu` marker) CUDA's sync debug mode counts the waits themselves.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

import model.decoding.beam as search
from model.architectures import select_rows
from model.decoding import pad_batch
from model.decoding.beam import DecodeConfig, Ensemble, Hypothesis, beam_search, greedy_search, length_penalty
from model.kernels import cpu_kernels
from model.tokenizers import EOS_ID, PAD_ID
from tests.helpers import random_sources, tiny_rnn, tiny_transformer

# --- the searches as they were: one host read per hypothesis, score and row --------------------------


def _reference_repeats(history, n, vocab):
    """The no-repeat guard as fairseq and transformers (before 4.5x) wrote it: each row's n-grams in a dict
    on the host, keyed by their first n-1 tokens; the row's last n-1 tokens look up what they ban."""
    if not n:
        return None
    bans = torch.zeros(history.size(0), vocab, dtype=torch.bool)
    for row, tokens in enumerate(history.tolist()):
        grams = {}
        for i in range(len(tokens) - n + 1):
            grams.setdefault(tuple(tokens[i:i + n - 1]), []).append(tokens[i + n - 1])
        for token in grams.get(tuple(tokens[len(tokens) - n + 1:]), []):
            bans[row, token] = True
    return bans.to(history.device)


def _reference_candidates(logits, step, at_max, cfg, ids, k, history):
    eos = ids[2]
    banned = search._banned(step, cfg, ids)
    repeats = _reference_repeats(history, cfg.no_repeat_ngram_size, logits.size(1))
    fast = cpu_kernels.candidates(logits, k, banned, eos, repeats)
    if fast is not None:
        values, tokens, eos_lprob = fast
        return _reference_end_at_max(values, tokens, at_max, eos_lprob, eos)
    lprobs = torch.log_softmax(logits.float(), dim=1)
    eos_lprob = lprobs[:, eos].clone()
    lprobs[:, banned] = float("-inf")
    if repeats is not None:
        lprobs[repeats] = float("-inf")
    if k == 1:
        values, tokens = lprobs.max(dim=1, keepdim=True)
    else:
        values, tokens = search.row_topk(lprobs, min(k, lprobs.size(1)))
    return _reference_end_at_max(values, tokens, at_max, eos_lprob, eos)


def _reference_end_at_max(lprobs, tokens, at_max, eos_lprob, eos):
    if at_max.any():
        lprobs[at_max] = float("-inf")
        lprobs[at_max, 0] = eos_lprob[at_max]
        tokens[at_max, 0] = eos
    return lprobs, tokens


def _reference_next(model, prev, memory, state, step, at_max, cfg, ids, k, history):
    logits, state = model.decode_step(prev, memory, state)
    return (*_reference_candidates(logits, step, at_max, cfg, ids, k, history), state)


def _reference_setup(model, src, cfg, prefix):
    ids = search._special_ids(model)
    P = 0 if prefix is None else prefix.size(1)
    max_len = search.max_lengths(src, model.cfg.source_pad_id, cfg, model.cfg.max_positions, P)
    return ids, P, max_len


@torch.inference_mode()
def reference_beam_search(model, src, cfg, prefix=None):
    ids, P, max_len = _reference_setup(model, src, cfg, prefix)
    pad, bos, eos = ids
    B0, K, device = src.size(0), cfg.beam_size, src.device
    width = 1 if 2 * K <= model.cfg.tgt_vocab_size else K
    shared = getattr(model, "shares_memory_across_beams", False)
    memory = model.encode(src)
    if width > 1 and not shared:
        memory = select_rows(memory, torch.arange(B0, device=device).repeat_interleave(K))
    expanded = None if prefix is None else prefix.repeat_interleave(width, dim=0)
    history, state = search._start(model, memory, B0 * width, bos, expanded, device)
    alive = torch.arange(B0, device=device)
    scores = torch.zeros(B0, width, device=device)
    scores[:, 1:] = float("-inf")
    finished = [[] for _ in range(B0)]
    n_finished = torch.zeros(B0, dtype=torch.long, device=device)
    beam_range = torch.arange(K, device=device)
    for step in range(int(max_len.max()) + 1):
        B = alive.numel()
        at_max = (max_len[alive] <= step).repeat_interleave(width)
        lprobs, tokens, state = _reference_next(model, history[:, -1], memory, state, step, at_max, cfg, ids, 2 * K,
                                                history)
        C = lprobs.size(1)
        cand_scores, cand_at, cand_beams = search.beam_step(lprobs.view(B, width, C), scores, K)
        cand_tokens = tokens.view(B, width * C).gather(1, cand_beams * C + cand_at)
        ends = cand_tokens.eq(eos) & torch.isfinite(cand_scores)
        ends[:, K:] = False
        for b, j in ends.nonzero().tolist():
            sent = int(alive[b])
            if len(finished[sent]) < K:
                n_finished[sent] += 1
                row = b * width + int(cand_beams[b, j])
                raw = float(cand_scores[b, j])
                finished[sent].append(Hypothesis(tokens=history[row, 1 + P:].tolist(),
                                                 score=length_penalty(raw, step + 1, cfg.length_penalty, cfg.alpha),
                                                 logprob=raw))
        done = (n_finished[alive] >= K) | (max_len[alive] <= step)
        keep = (~done).nonzero().squeeze(1)
        if keep.numel() == 0:
            break
        live_scores = cand_scores.masked_fill(cand_tokens.eq(eos), float("-inf"))
        top_scores, top = live_scores.topk(K, dim=1)
        next_tokens = cand_tokens.gather(1, top)[keep]
        rows = (keep[:, None] * width + cand_beams.gather(1, top)[keep]).view(-1)
        state = model.reorder(state, rows)
        if shared and keep.numel() < B:
            memory = select_rows(memory, keep)
        elif not shared and (keep.numel() < B or width < K):
            memory = select_rows(memory, (keep[:, None] * width + beam_range % width).view(-1))
        history = torch.cat([history.index_select(0, rows), next_tokens.view(-1, 1)], dim=1)
        scores = top_scores[keep]
        alive = alive[keep]
        width = K
    return [sorted(h, key=lambda x: -x.score)[: cfg.nbest] for h in finished]


@torch.inference_mode()
def reference_greedy_search(model, src, cfg, prefix=None):
    ids, P, max_len = _reference_setup(model, src, cfg, prefix)
    pad, bos, eos = ids
    B0, device = src.size(0), src.device
    memory = model.encode(src)
    history, state = search._start(model, memory, B0, bos, prefix, device)
    alive = torch.arange(B0, device=device)
    logprob = torch.zeros(B0, device=device)
    results = [[] for _ in range(B0)]
    for step in range(int(max_len.max()) + 1):
        best_lp, best, state = _reference_next(model, history[:, -1], memory, state, step, max_len[alive] <= step,
                                               cfg, ids, 1, history)
        best_lp, best = best_lp[:, 0], best[:, 0]
        logprob = logprob + best_lp
        ended = best.eq(eos)
        for b in ended.nonzero().squeeze(1).tolist():
            raw = float(logprob[b])
            results[int(alive[b])].append(Hypothesis(tokens=history[b, 1 + P:].tolist(),
                                                     score=length_penalty(raw, step + 1, cfg.length_penalty, cfg.alpha),
                                                     logprob=raw))
        keep = (~ended).nonzero().squeeze(1)
        if keep.numel() == 0:
            break
        state = model.reorder(state, keep)
        memory = select_rows(memory, keep)
        history = torch.cat([history[keep], best[keep, None]], dim=1)
        logprob, alive = logprob[keep], alive[keep]
    return results


# --- models and batches --------------------------------------------------------------------------------

VOCAB = 20
SRC = random_sources(8, VOCAB, 1, 9, seed=11)


def _model(kind: str, seed: int = 7):
    torch.manual_seed(seed)
    if kind == "transformer":  # one memory row per sentence, shared by its beams
        model = tiny_transformer(VOCAB)
    elif kind == "rnn":  # a memory row per beam
        model = tiny_rnn(VOCAB)
    elif kind == "small-vocab":  # 2K > vocabulary from K=4 (a Transformer cannot): the beam starts expanded,
        model = tiny_rnn(7)  # and before min_len 4 tokens are allowed: at K=5, -inf candidates among the top K
    elif kind == "bos-is-eos":  # fairseq/M2M100-style start from EOS (BOS is not banned)
        model = tiny_transformer(VOCAB, bos_id=EOS_ID)
    else:
        return Ensemble([_model("transformer"), _model("transformer", seed=8)])
    # An EOS bias, so that hypotheses end at every length: before, at and after min_len, and at max_len.
    with torch.no_grad():
        model.output.bias[EOS_ID] += 3.0
    return model.eval()


MODELS = ["transformer", "rnn", "small-vocab", "bos-is-eos", "ensemble"]
# (DecodeConfig fields, prefix length) per case; the beam cases return all K hypotheses (nbest=K).
CASES = [
    (dict(max_len_a=1.0, max_len_b=3), 0),
    (dict(max_len_a=0.5, max_len_b=1, min_len=2, length_penalty="none"), 0),  # most end at max_len
    (dict(max_len_a=1.5, max_len_b=4, min_len=3, length_penalty="gnmt", alpha=0.6), 2),
]


def _batch(model, P: int):
    """A batch of 8 sentences (1 to 9 tokens) and a forced target prefix (8, P), None when P is 0."""
    vocab = model.cfg.tgt_vocab_size
    src = pad_batch([[min(t, vocab - 1) for t in s] for s in SRC], PAD_ID, suffix=EOS_ID)
    prefix = torch.tensor(random_sources(len(SRC), vocab, P, P, seed=P)) if P else None
    return src, prefix


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: a second thread only adds waits between threads (long ones on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=[True, False], ids=["kernels", "torch"])
def kernels(request, monkeypatch):
    """The CPU C kernel's candidates, or torch's (log_softmax, banned tokens, top-k) as on a GPU."""
    if not request.param:
        monkeypatch.setattr(cpu_kernels, "candidates", lambda *args: None)
    elif not cpu_kernels.available():
        pytest.skip("no C compiler: the kernels are not built")


def _summary(results):
    return [[(h.tokens, h.score, h.logprob) for h in hyps] for hyps in results]


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("K", [1, 2, 4, 5])  # 1: greedy-like; 2; 4, 5: 2K above small-vocab's 7 tokens
def test_beam_search_finds_what_reading_each_value_found(kind, K, kernels):
    model = _model(kind)
    lengths = set()
    for fields, P in CASES:
        cfg = DecodeConfig(beam_size=K, nbest=K, **fields)
        src, prefix = _batch(model, P)
        ours = beam_search(model, src, cfg, prefix)
        assert _summary(ours) == _summary(reference_beam_search(model, src, cfg, prefix))
        assert all(len(hyps) == K for hyps in ours)
        limits = search.max_lengths(src, PAD_ID, cfg, prefix_len=P).tolist()
        lengths |= {len(h.tokens) == limit for hyps, limit in zip(ours, limits, strict=True) for h in hyps}
    assert lengths == {True, False}  # hypotheses ended at their length limit, and before it


# The no-repeat guard: its bans follow each row through the beam's reorderings; the forced prefix is part
# of the n-grams (transformers counts the decoder's whole input). n=1 on the 7-token vocabulary leaves rows
# fewer allowed tokens than candidates wanted: -inf candidates, and sentences with fewer than K hypotheses.
GUARD_CASES = [
    (dict(max_len_a=1.5, max_len_b=4, no_repeat_ngram_size=2), 0),
    (dict(max_len_a=1.0, max_len_b=6, min_len=2, length_penalty="none", no_repeat_ngram_size=1), 2),
    (dict(max_len_a=1.5, max_len_b=4, min_len=3, length_penalty="gnmt", alpha=0.6, no_repeat_ngram_size=3), 1),
]


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("K", [1, 2, 5])
def test_the_no_repeat_guard_finds_what_the_ngram_dictionaries_find(kind, K, kernels):
    model = _model(kind)
    changed = []
    for fields, P in GUARD_CASES:
        src, prefix = _batch(model, P)
        for find, reference in ((beam_search, reference_beam_search), (greedy_search, reference_greedy_search)):
            if find is greedy_search and K > 1:
                continue
            cfg = DecodeConfig(beam_size=K, nbest=K, **fields)
            ours = find(model, src, cfg, prefix)
            assert _summary(ours) == _summary(reference(model, src, cfg, prefix)), (fields, find.__name__)
            off = find(model, src, DecodeConfig(beam_size=K, nbest=K, **{**fields, "no_repeat_ngram_size": 0}),
                       prefix)
            changed.append(_summary(ours) != _summary(off))
    assert any(changed)  # the guard changed translations


@pytest.mark.parametrize("kind", MODELS)
def test_greedy_search_finds_what_reading_each_value_found(kind, kernels):
    model = _model(kind)
    for fields, P in CASES:
        cfg = DecodeConfig(beam_size=1, **fields)
        src, prefix = _batch(model, P)
        ours = greedy_search(model, src, cfg, prefix)
        assert _summary(ours) == _summary(reference_greedy_search(model, src, cfg, prefix))


def test_beam_select_by_hand():
    """The per-step decisions on hand-written candidates (K=2, 2K=4 per sentence, best first)."""
    inf, E = float("inf"), EOS_ID
    cand_scores = torch.tensor([[-1.0, -2.0, -3.0, -4.0], [-0.1, -0.2, -0.3, -0.4], [-0.5, -inf, -inf, -inf]])
    cand_tokens = torch.tensor([[E, E, 5, 6], [4, E, 5, E], [7, E, E, 4]])
    cand_beams = torch.tensor([[0, 1, 1, 0], [0, 0, 1, 1], [0, 1, 0, 1]])
    n_finished = torch.tensor([1, 0, 0, 2])  # sentence 3 is no longer in the batch
    alive, at_limit = torch.tensor([0, 1, 2]), torch.tensor([False, False, True])
    accepted, done, top_scores, beams, tokens = search._beam_select(
        cand_scores, cand_tokens, cand_beams, 2, n_finished, alive, at_limit, E)
    # Sentence 0 had 1 hypothesis: its first EOS makes K=2, the second is one too many. Sentence 2's
    # EOS candidate is impossible (-inf): it ends nothing, but the sentence is at its length limit.
    assert accepted.tolist() == [[True, False], [False, True], [False, False]]
    assert n_finished.tolist() == [2, 1, 0, 2]
    assert done.tolist() == [True, False, True]
    # The 2 best candidates that are not EOS continue.
    assert torch.equal(top_scores[:2], torch.tensor([[-3.0, -4.0], [-0.1, -0.3]]))
    assert beams[:2].tolist() == [[1, 0], [0, 1]] and tokens[:2].tolist() == [[5, 6], [4, 5]]
    assert top_scores[2, 0] == -0.5 and tokens[2, 0] == 7
    # No sentence at its length limit (None): only the finished count decides.
    n_finished = torch.tensor([1, 0, 0, 2])
    _, done, *_ = search._beam_select(cand_scores, cand_tokens, cand_beams, 2, n_finished, alive, None, E)
    assert done.tolist() == [True, False, False]


# --- counting host reads ---------------------------------------------------------------------------


def _always(args, kwargs):
    return True


def _host_index(args, kwargs):
    """An index the device must wait on (a boolean mask: nonzero) or have copied to it (a list)."""
    index = args[1]
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (list, np.ndarray)) or (isinstance(p, torch.Tensor) and p.dtype == torch.bool)
               for p in parts)


def _to_cpu(args, kwargs):
    return any(str(a) == "cpu" for a in (*args[1:], kwargs.get("device")))


def _tensor_repeats(args, kwargs):
    return isinstance(args[1] if len(args) > 1 else kwargs.get("repeats"), torch.Tensor)


def _one_argument(args, kwargs):
    return len(args) == 1 and not kwargs


# Reads of a device value on the host, data-dependent sizes (which the host waits for), and host data
# copied to the device: one wait each on a GPU.
TENSOR_READS = {name: _always for name in ("item", "tolist", "cpu", "numpy", "nonzero", "masked_select", "unique",
                                           "__bool__", "__int__", "__float__", "__index__", "__array__")}
TENSOR_READS |= {"__getitem__": _host_index, "__setitem__": _host_index, "to": _to_cpu,
                 "repeat_interleave": _tensor_repeats}
TORCH_READS = {name: _always for name in ("nonzero", "masked_select", "unique", "tensor", "as_tensor", "from_numpy")}
TORCH_READS |= {"where": _one_argument}


class HostReads:
    """The calls above made directly from the lines of `files`, while installed."""

    def __init__(self, monkeypatch, *files: str):
        self.files = set(files)
        self.calls: list[str] = []
        for owner, table in ((torch.Tensor, TENSOR_READS), (torch, TORCH_READS)):
            for name, counts in table.items():
                monkeypatch.setattr(owner, name, self._counted(name, getattr(owner, name), counts))

    def _counted(self, name, original, counts):
        def call(*args, **kwargs):
            caller = sys._getframe(1)
            if caller.f_code.co_filename in self.files and counts(args, kwargs):
                self.calls.append(f"{name} ({caller.f_code.co_name}, line {caller.f_lineno})")
            return original(*args, **kwargs)

        return call


@pytest.fixture
def steps(monkeypatch):
    """The number of decoding steps the searches run (calls of model/decoding/beam.py's `_next`)."""
    count = []
    step = search._next

    def counted(*args):
        count.append(1)
        return step(*args)

    monkeypatch.setattr(search, "_next", counted)
    return count


@pytest.mark.parametrize("kind", ["transformer", "rnn"])
@pytest.mark.parametrize("K", [1, 2, 5])
@pytest.mark.parametrize("guard", [0, 2])
def test_beam_search_reads_the_device_once_per_step(kind, K, guard, kernels, steps, monkeypatch):
    model = _model(kind)
    cfg = DecodeConfig(beam_size=K, nbest=K, max_len_a=1.0, max_len_b=3, min_len=2, no_repeat_ngram_size=guard)
    src, prefix = _batch(model, 1)
    expected = _summary(reference_beam_search(model, src, cfg, prefix))
    reads = HostReads(monkeypatch, search.__file__)
    assert _summary(beam_search(model, src, cfg, prefix)) == expected
    assert steps and len(reads.calls) <= len(steps) + 2, reads.calls


@pytest.mark.parametrize("kind", ["transformer", "rnn"])
@pytest.mark.parametrize("guard", [0, 2])
def test_greedy_search_reads_the_device_once_per_step(kind, guard, kernels, steps, monkeypatch):
    model = _model(kind)
    cfg = DecodeConfig(beam_size=1, max_len_a=1.0, max_len_b=3, min_len=2, no_repeat_ngram_size=guard)
    src, prefix = _batch(model, 1)
    expected = _summary(reference_greedy_search(model, src, cfg, prefix))
    reads = HostReads(monkeypatch, search.__file__)
    assert _summary(greedy_search(model, src, cfg, prefix)) == expected
    assert steps and len(reads.calls) <= len(steps) + 2, reads.calls


def test_the_count_sees_the_reads_of_the_reference(monkeypatch):
    """The counter is not blind: the searches as they were read the device several times per step."""
    model = _model("transformer")
    decode_step, steps = model.decode_step, []
    monkeypatch.setattr(model, "decode_step", lambda *args: steps.append(1) or decode_step(*args))
    src, _ = _batch(model, 0)
    reads = HostReads(monkeypatch, __file__)
    for cfg, find in ((DecodeConfig(beam_size=3, nbest=3, max_len_a=1.0, max_len_b=3), reference_beam_search),
                      (DecodeConfig(beam_size=1, max_len_a=1.0, max_len_b=3), reference_greedy_search)):
        reads.calls.clear()
        steps.clear()
        find(model, src, cfg)
        assert len(reads.calls) > 2 * len(steps) + 2
        assert {"nonzero", "tolist", "__int__", "__float__"} <= {c.split()[0] for c in reads.calls}


@pytest.mark.gpu
@pytest.mark.parametrize("K", [1, 4])
@pytest.mark.parametrize("guard", [0, 2])
def test_cuda_search_waits_once_per_step(K, guard, steps):
    """CUDA's sync debug mode warns at every wait for the device: those from model/decoding/beam.py's lines are
    one before the steps and one per step, with the no-repeat guard too; the hypotheses are those of the
    reference, on the GPU too."""
    model = _model("transformer").cuda()
    cfg = DecodeConfig(beam_size=K, nbest=K, max_len_a=1.0, max_len_b=3, min_len=2, no_repeat_ngram_size=guard)
    src, prefix = _batch(model, 1)
    src, prefix = src.cuda(), prefix.cuda()
    find, reference = (greedy_search, reference_greedy_search) if K == 1 else (beam_search, reference_beam_search)
    expected = _summary(reference(model, src, cfg, prefix))
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            found = _summary(find(model, src, cfg, prefix))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert found == expected
    waits = [f"{w.filename}:{w.lineno}" for w in caught if w.filename == search.__file__]
    assert steps and len(waits) <= len(steps) + 2, waits
