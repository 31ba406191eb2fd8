"""Batched beam search, greedy search and ensembles over the shared decoding interface.

Beam search follows fairseq's design: a pure step function picks 2*K
candidates per sentence so that candidates ending in EOS never starve the
beam, and a driver loop finalizes EOS candidates, keeps the best K live ones
and drops finished sentences from the batch so compute shrinks as they end.

Both searches read the device once per step, and once before the first (the length limits). On
a GPU the host only queues kernels, and reading a value that they compute (`.item()`, `.tolist()`,
`if t.any()`, the size of a `nonzero`, a boolean-mask index; or copying a Python list to the device
as an index) makes the host wait until every kernel queued before it has run; the device then idles
until the host has the value and has queued the next kernels. A loop over `ends.nonzero().tolist()`
with an `int()` and a `float()` per finished hypothesis waits many times per step. So the
bookkeeping stays on the device (which candidates end a hypothesis, which sentences are done, which
rows continue) and each step ends in one copy to the host of a small float64 array that holds all
the host needs: the finished hypotheses' scores and rows, and the rows and tokens that continue.
float64 holds the float32 scores and the token ids exactly, so the hypotheses are bit for bit those
of reading each value where it is needed. The host keeps its own copy of every live row's tokens
(numpy), so a finished hypothesis reads nothing more from the device.

Letters in shape comments: B sentences still decoding, K beam, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from model.architectures import select_rows
from model.decoding.config import DecodeConfig
from model.kernels import cpu_kernels


@dataclass(frozen=True)
class Hypothesis:
    tokens: list[int]  # target ids, without BOS/EOS
    score: float  # length-normalized log-probability, used for ranking
    logprob: float  # raw sum of token log-probabilities (EOS included)
    # Cut at its length limit: its EOS was forced there (ours) or never came (CTranslate2). Most such
    # hypotheses are loops ("8 8 8 ...", "Toooooo..."): the translation job gives their rows a status of
    # their own (issue 31).
    length_limited: bool = False


def length_penalty(logprob: float, length: int, kind: str, alpha: float) -> float:
    """Normalize a hypothesis score by its length (EOS counted).

    "average": logprob / length**alpha (fairseq's --lenpen; alpha=1 is the mean).
    "gnmt": logprob / ((5 + length) / 6)**alpha (Wu et al., 2016, eq. 14).
    """
    if kind == "none":
        return logprob
    if kind == "average":
        return logprob / length**alpha
    return logprob / ((5.0 + length) / 6.0) ** alpha


def beam_step(lprobs: torch.Tensor, scores: torch.Tensor, beam: int | None = None):
    """One beam step as a pure function.

    lprobs (B, W, C) next-token log-probs of W live hypotheses per sentence (over the whole vocabulary,
    or over each hypothesis' C best tokens), scores (B, W) their cumulative scores; `beam` K (default W;
    W is 1 on the first step, before the beam expands).
    Returns the 2K best extensions per sentence, best first:
    cand_scores (B, 2K), cand_tokens (B, 2K) (indices into C), cand_beams (B, 2K) (indices into W).
    """
    B, W, C = lprobs.shape
    K = beam or W
    total = (scores[:, :, None] + lprobs).view(B, W * C)
    cand_scores, flat = total.topk(min(2 * K, W * C), dim=1)
    return cand_scores, flat % C, torch.div(flat, C, rounding_mode="floor")


# Groups per row in row_topk (at least 4 per wanted value; rows under 16 groups' width go to torch.topk).
_GROUPS = 64


def row_topk(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x.topk(k, dim=1) for wide rows x (N, V) on CPU: the same values, in a fraction of the time.

    torch.topk over a vocabulary-wide row costs as much as a log_softmax. Here the row's first
    G*(V//G) columns are split into G interleaved groups (group g: columns g, g+G, g+2G, ...). Each of
    the k best values is the maximum of its group or below it, so they all lie in the k groups with
    the largest maxima: one max per group (a vectorized pass over the row), a top-k over the G
    maxima, and a top-k over those k groups' columns (plus the V % G tail columns) find them.
    Only ties at the k-th value may resolve to a different column than torch.topk's.
    """
    N, V = x.shape
    G = max(_GROUPS, 4 * k)
    if V < 16 * G or x.device.type != "cpu":  # a GPU's topk is one kernel: five launches would cost more
        return x.topk(k, dim=1)
    per = V // G  # columns per group
    body = x[:, :G * per]
    _, groups = body.view(N, per, G).amax(1).topk(k, dim=1)  # (N, k)
    cols = (groups[:, :, None] + torch.arange(per, device=x.device) * G).view(N, k * per)
    if V > G * per:  # the tail columns are candidates of their own
        tail = torch.arange(G * per, V, device=x.device).expand(N, -1)
        cols = torch.cat([cols, tail], dim=1)
    values, at = x.gather(1, cols).topk(k, dim=1)
    return values, cols.gather(1, at)


def repeated_ngram_bans(history: torch.Tensor, n: int, vocab: int) -> torch.Tensor | None:
    """(N, V) True where the next token would complete an n-gram that the row's history (N, T) already
    holds; None when nothing can be banned (n 0: the guard is off; fewer than n tokens so far).

    transformers' NoRepeatNGramLogitsProcessor (the same computation, so the same tokens): history is the
    decoder's input so far, start token and forced prefix included. The last n-1 tokens are matched against
    the first n-1 of every n-token window, and each matching window bans its last token. All on the
    device, with no read on the host: the search reads the device once per step (module docstring).
    """
    N, T = history.shape
    if n <= 0 or T < n:
        return None
    windows = history.unfold(1, n, 1)  # (N, T-n+1, n)
    matches = (windows[..., :-1] == history[:, None, T - n + 1:]).all(-1)  # (N, T-n+1) against the last n-1
    # Windows that do not match ban the spare column V, which is cut off: a scatter of False could unban
    # a token that another window bans.
    bans = torch.zeros(N, vocab + 1, dtype=torch.bool, device=history.device)
    bans.scatter_(1, torch.where(matches, windows[..., -1], vocab), True)
    return bans[:, :vocab]


def _banned(step: int, cfg: DecodeConfig, ids) -> list[int]:
    """The tokens the search may not produce at `step`. (Rows at their length limit: `_end_at_max`.)"""
    pad, bos, eos = ids
    banned = [pad]
    if bos != eos:  # fairseq-style models (M2M100) start decoding from EOS itself
        banned.append(bos)
    if step < cfg.min_len:
        banned.append(eos)
    return banned


def _candidates(logits: torch.Tensor, step: int, at_max: torch.Tensor | None, cfg: DecodeConfig, ids, k: int,
                history: torch.Tensor | None = None):
    """Each row's k best next tokens under the search constraints: log-probs (N, k), token ids (N, k).

    logits (N, V); at_max (N,) rows that must end now (None: none); history (N, T) each row's decoder input
    so far, for --no-repeat-ngram-size (None: the guard is off). The log-probs are normalized over the whole
    row before the constraints take tokens out (fairseq and transformers do not renormalize either), and only each
    row's k best are kept: adding the beam scores to all (N, V) log-probs and a top-k over beam x
    vocabulary would cost as much as the output projection itself.

    On CPU a C kernel does it in two cached reads per row (model/kernels/cpu_kernels.py). Elsewhere
    log_softmax is one fused pass over the row; a max, a subtraction, an exp and a sum as separate ops
    read the (N, V) block from memory four times, which cost ~1.4x as much on the shipped model's 8k
    vocabulary.
    """
    eos = ids[2]
    banned = _banned(step, cfg, ids)
    repeats = None if history is None else repeated_ngram_bans(history, cfg.no_repeat_ngram_size, logits.size(1))
    fast = cpu_kernels.candidates(logits, k, banned, eos, repeats)
    if fast is not None:
        values, tokens, eos_lprob = fast
        return _end_at_max(values, tokens, at_max, eos_lprob, eos)
    lprobs = torch.log_softmax(logits.float(), dim=1)  # (N, V)
    eos_lprob = lprobs[:, eos].clone()
    for token in banned:  # without renormalizing, as fairseq does
        lprobs[:, token] = float("-inf")  # one int index each: a list index would be copied to the device
    if repeats is not None:
        lprobs.masked_fill_(repeats, float("-inf"))
    if k == 1:
        values, tokens = lprobs.max(dim=1, keepdim=True)
    else:
        values, tokens = row_topk(lprobs, min(k, lprobs.size(1)))
    return _end_at_max(values, tokens, at_max, eos_lprob, eos)


def _end_at_max(lprobs, tokens, at_max: torch.Tensor | None, eos_lprob, eos: int):
    """Rows at their length limit can only end: their one candidate is EOS, at its own log-prob.

    at_max None: no row is at its limit (the searches know it from their host copy of the limits).
    Otherwise masks over every row: `if at_max.any()` or a boolean index would read at_max on the host,
    a wait on a GPU (see the module docstring).
    """
    if at_max is None:
        return lprobs, tokens
    lprobs.masked_fill_(at_max[:, None], float("-inf"))
    lprobs[:, 0] = torch.where(at_max, eos_lprob, lprobs[:, 0])
    tokens[:, 0].masked_fill_(at_max, eos)
    return lprobs, tokens


def _next(model, prev: torch.Tensor, memory, state, step: int, at_max: torch.Tensor | None, cfg: DecodeConfig, ids,
          k: int, history: torch.Tensor | None = None):
    """One decoding step: each row's k best next tokens (log-probs (N, k), ids (N, k)) and the new state."""
    logits, state = model.decode_step(prev, memory, state)
    return (*_candidates(logits, step, at_max, cfg, ids, k, history), state)


def _special_ids(model) -> tuple[int, int, int]:
    return model.cfg.pad_id, model.cfg.bos_id, model.cfg.eos_id


def max_lengths(src: torch.Tensor, pad_id: int, cfg: DecodeConfig, max_positions: int = 0,
                prefix_len: int = 0) -> torch.Tensor:
    """(B,) maximum number of target tokens per sentence, EOS and forced prefix excluded.

    A model with a fixed number of positions (max_positions > 0) is fed the start token, the
    prefix and then each target token, so it can produce at most max_positions - 1 - prefix_len
    tokens before the forced EOS.
    """
    src_len = src.ne(pad_id).sum(1).float()  # pad_id: the source side's
    lengths = (cfg.max_len_a * src_len + cfg.max_len_b).floor().long().clamp(min=max(cfg.min_len, 1))
    return lengths.clamp(max=max(max_positions - 1 - prefix_len, 1)) if max_positions else lengths


def _start(model, memory, rows: int, bos: int, prefix: torch.Tensor | None, device):
    """(history, state) after the start token and the forced prefix (rows, P) have been fed.

    The prefix (a target-language token) is forced at no cost, as transformers' forced_bos_token_id:
    the steps that feed it are run for their cache only.
    """
    start = torch.full((rows, 1), bos, dtype=torch.long, device=device)
    history = start if prefix is None else torch.cat([start, prefix], dim=1)
    state = model.init_state(memory)
    for t in range(history.size(1) - 1):
        _, state = model.decode_step(history[:, t], memory, state)
    return history, state


def _to_host(*columns: torch.Tensor) -> np.ndarray:
    """Columns (N, c_i) of any dtype side by side in one float64 (N, sum c_i) host array: one copy, one
    wait. float64 holds float32 values and integers below 2**53 exactly."""
    return torch.cat([c.to(torch.float64) for c in columns], dim=1).numpy(force=True)


def _rows_where(mask: torch.Tensor, n: int) -> torch.Tensor:
    """mask.nonzero().squeeze(1), given n, the number of True rows, from the host. nonzero would wait for
    the device to count them (its size depends on the data); a stable sort of the False flags puts the
    True rows first, in order."""
    return torch.argsort((~mask).to(torch.uint8), stable=True)[:n]


def _hypothesis(tokens: np.ndarray, raw: float, length: int, cfg: DecodeConfig, limit: int) -> Hypothesis:
    """A finished hypothesis from its tokens (EOS excluded), raw log-prob, length (EOS counted) and its
    sentence's length limit (tokens, EOS excluded): at the limit its EOS was forced."""
    return Hypothesis(tokens=tokens.tolist(), score=length_penalty(raw, length, cfg.length_penalty, cfg.alpha),
                      logprob=raw, length_limited=bool(len(tokens) >= limit))


def _beam_select(cand_scores, cand_tokens, cand_beams, K: int, n_finished, alive, at_limit, eos: int):
    """One step's decisions, on the device, from the 2K candidates of each of the B live sentences.

    EOS among the top K candidates ends a hypothesis, at most K per sentence, in candidate order (fairseq):
    an EOS candidate is accepted while the sentence's finished count, plus the EOS candidates up to and
    including it, is at most K. n_finished (B0,) counts the accepted ones (updated in place); alive (B,)
    the live sentences' indices into it; at_limit (B,) those at their length limit (None: none).
    Returns accepted (B, K); done (B,), the sentences with K finished or at their length limit; and the
    K best candidates that are not EOS, which continue: scores, beams and tokens (B, K) each.
    """
    ends = cand_tokens[:, :K].eq(eos) & torch.isfinite(cand_scores[:, :K])  # (B, K)
    before = n_finished[alive]  # (B,)
    accepted = ends & (before[:, None] + ends.cumsum(1) <= K)
    after = before + accepted.sum(1)
    n_finished.index_copy_(0, alive, after)
    done = after >= K if at_limit is None else (after >= K) | at_limit
    live_scores = cand_scores.masked_fill(cand_tokens.eq(eos), float("-inf"))  # cand_* are sorted best first
    top_scores, top = live_scores.topk(K, dim=1)  # (B, K)
    return accepted, done, top_scores, cand_beams.gather(1, top), cand_tokens.gather(1, top)


@torch.inference_mode()
def beam_search(model, src: torch.Tensor, cfg: DecodeConfig, prefix: torch.Tensor | None = None
                ) -> list[list[Hypothesis]]:
    """Decode src (B, S) and return, per sentence, its `cfg.nbest` best hypotheses.

    prefix (B, P): target tokens forced after the start token (multilingual models' target language),
    left out of the hypotheses and of every length.
    """
    ids = _special_ids(model)
    pad, bos, eos = ids
    B0, K, device = src.size(0), cfg.beam_size, src.device
    P = 0 if prefix is None else prefix.size(1)
    max_len = max_lengths(src, model.cfg.source_pad_id, cfg, model.cfg.max_positions, P)  # (B0,)
    # All K beams start identical, so the first step runs one row per sentence (as CTranslate2 does on
    # CPU) and its 2K candidates expand the beam: 1/K of that step's work. A vocabulary smaller than 2K
    # could not fill the candidates from one row; such toy models start expanded.
    width = 1 if 2 * K <= model.cfg.tgt_vocab_size else K  # live hypotheses per sentence
    # A model that shares_memory_across_beams keeps one memory row per sentence for all its beams;
    # others get a copy per beam.
    shared = model.shares_memory_across_beams
    memory = model.encode(src)
    if width > 1 and not shared:
        memory = select_rows(memory, torch.arange(B0, device=device).repeat_interleave(K))
    expanded = None if prefix is None else prefix.repeat_interleave(width, dim=0)
    history, state = _start(model, memory, B0 * width, bos, expanded, device)

    prev = history[:, -1]  # (B*width,) each row's last token, the next step's input
    # (B*width, 1+P+step) each row's decoder input, kept on the device for the no-repeat guard (None: off).
    history = history if cfg.no_repeat_ngram_size else None
    alive = torch.arange(B0, device=device)  # original sentence index of each live row group
    alive_cpu = np.arange(B0)  # the same on the host, as are the tokens below
    hist_cpu = np.zeros((B0 * width, 0), dtype=np.int64)  # (B*width, step) each row's target tokens so far
    scores = torch.zeros(B0, width, device=device)
    scores[:, 1:] = float("-inf")  # expanded from the start: identical beams, keep only the first
    finished: list[list[Hypothesis]] = [[] for _ in range(B0)]
    n_finished = torch.zeros(B0, dtype=torch.long, device=device)
    beam_range = torch.arange(K, device=device)

    max_len_cpu = max_len.numpy(force=True)  # the one read before the steps
    for step in range(int(max_len_cpu.max()) + 1):
        B = alive.numel()
        # Sentences at their length limit (the host knows when there are some: on most steps none).
        at_limit = max_len[alive] <= step if (max_len_cpu[alive_cpu] <= step).any() else None  # (B,)
        at_max = None if at_limit is None else at_limit.repeat_interleave(width)
        lprobs, tokens, state = _next(model, prev, memory, state, step, at_max, cfg, ids, 2 * K, history)
        C = lprobs.size(1)
        cand_scores, cand_at, cand_beams = beam_step(lprobs.view(B, width, C), scores, K)
        cand_tokens = tokens.view(B, width * C).gather(1, cand_beams * C + cand_at)
        accepted, done, top_scores, next_beams, next_tokens = _beam_select(
            cand_scores, cand_tokens, cand_beams, K, n_finished, alive, at_limit, eos)

        # The step's one read, (B, 5K+1): what the host needs to finish hypotheses and follow the beams.
        host = _to_host(cand_scores[:, :K], accepted, cand_beams[:, :K], next_beams, next_tokens, done[:, None])
        end_scores, ends_cpu, end_beams, next_beams_cpu, next_tokens_cpu = np.split(host[:, :5 * K], 5, axis=1)
        for b, j in zip(*np.nonzero(ends_cpu), strict=True):
            row, sentence = b * width + int(end_beams[b, j]), alive_cpu[b]
            finished[sentence].append(_hypothesis(hist_cpu[row], float(end_scores[b, j]), step + 1, cfg,
                                                  max_len_cpu[sentence]))
        keep_cpu = np.flatnonzero(host[:, 5 * K] == 0)  # (B',) the sentences not done
        if keep_cpu.size == 0:
            break
        keep = _rows_where(~done, keep_cpu.size)  # the same rows, on the device
        rows = (keep[:, None] * width + next_beams[keep]).view(-1)  # (B'K,)
        state = model.reorder(state, rows)
        if shared and keep_cpu.size < B:  # sentences finished: their memory goes
            memory = select_rows(memory, keep)
        elif not shared and (keep_cpu.size < B or width < K):  # the same, or the beam expands: copies follow
            memory = select_rows(memory, (keep[:, None] * width + beam_range % width).view(-1))
        rows_cpu = (keep_cpu[:, None] * width + next_beams_cpu[keep_cpu].astype(np.int64)).reshape(-1)
        hist_cpu = np.concatenate([hist_cpu[rows_cpu], next_tokens_cpu[keep_cpu].reshape(-1, 1).astype(np.int64)], 1)
        prev = next_tokens[keep].view(-1)
        if history is not None:
            history = torch.cat([history.index_select(0, rows), prev[:, None]], dim=1)
        scores = top_scores[keep]
        alive, alive_cpu = alive[keep], alive_cpu[keep_cpu]
        width = K

    return [sorted(h, key=lambda x: -x.score)[: cfg.nbest] for h in finished]


@torch.inference_mode()
def greedy_search(model, src: torch.Tensor, cfg: DecodeConfig, prefix: torch.Tensor | None = None
                  ) -> list[list[Hypothesis]]:
    """Arg-max decoding with the same constraints and scores as beam search with K=1."""
    ids = _special_ids(model)
    pad, bos, eos = ids
    B0, device = src.size(0), src.device
    P = 0 if prefix is None else prefix.size(1)
    max_len = max_lengths(src, model.cfg.source_pad_id, cfg, model.cfg.max_positions, P)
    memory = model.encode(src)
    history, state = _start(model, memory, B0, bos, prefix, device)
    prev = history[:, -1]  # (B,)
    history = history if cfg.no_repeat_ngram_size else None  # (B, 1+P+step) for the no-repeat guard
    alive, alive_cpu = torch.arange(B0, device=device), np.arange(B0)
    hist_cpu = np.zeros((B0, 0), dtype=np.int64)  # (B, step) each row's target tokens so far, on the host
    logprob = torch.zeros(B0, device=device)
    results: list[list[Hypothesis]] = [[] for _ in range(B0)]

    max_len_cpu = max_len.numpy(force=True)  # the one read before the steps
    for step in range(int(max_len_cpu.max()) + 1):
        at_max = max_len[alive] <= step if (max_len_cpu[alive_cpu] <= step).any() else None  # (B,)
        best_lp, best, state = _next(model, prev, memory, state, step, at_max, cfg, ids, 1, history)
        logprob = logprob + best_lp[:, 0]  # (B,)
        host = _to_host(best, logprob[:, None])  # the step's one read, (B, 2): each row's token and log-prob
        best_cpu, logprob_cpu = host[:, 0].astype(np.int64), host[:, 1]
        for b in np.flatnonzero(best_cpu == eos):
            sentence = alive_cpu[b]
            results[sentence].append(_hypothesis(hist_cpu[b], float(logprob_cpu[b]), step + 1, cfg,
                                                 max_len_cpu[sentence]))
        keep_cpu = np.flatnonzero(best_cpu != eos)  # (B',)
        if keep_cpu.size == 0:
            break
        best = best[:, 0]
        if keep_cpu.size < best.numel():  # sentences ended: their rows go
            keep = _rows_where(best.ne(eos), keep_cpu.size)  # keep_cpu, on the device
            state = model.reorder(state, keep)
            memory = select_rows(memory, keep)
            best, logprob, alive = best[keep], logprob[keep], alive[keep]
            history = None if history is None else history.index_select(0, keep)
        if history is not None:
            history = torch.cat([history, best[:, None]], dim=1)
        hist_cpu = np.concatenate([hist_cpu[keep_cpu], best_cpu[keep_cpu, None]], axis=1)
        prev, alive_cpu = best, alive_cpu[keep_cpu]
    return results


def search(model, src: torch.Tensor, cfg: DecodeConfig, prefix: torch.Tensor | None = None
           ) -> list[list[Hypothesis]]:
    """Greedy when beam_size is 1 (same result, less bookkeeping), beam search otherwise."""
    find = greedy_search if cfg.beam_size == 1 else beam_search
    return find(model, src, cfg, prefix)


class Ensemble:
    """Several models with one target vocabulary decoded as one.

    Averages the models' next-token log-probabilities (Marian's ensembling with
    equal weights; Sutskever et al. 2014 ensembled 5 LSTMs). Exposes the same
    decoding interface, so the searches above take it unchanged.
    """

    def __init__(self, models):
        if not models:
            raise ValueError("an ensemble needs at least one model")
        first = models[0].cfg
        for m in models[1:]:
            if (m.cfg.src_vocab_size, m.cfg.tgt_vocab_size, _special_ids(m)) != (
                first.src_vocab_size, first.tgt_vocab_size, _special_ids(models[0])):
                raise ValueError("ensemble members must share the source and target vocabularies and special ids")
        self.models = list(models)
        self.cfg = first
        self.shares_memory_across_beams = all(m.shares_memory_across_beams for m in models)

    def fuse_for_decoding(self) -> None:
        for m in self.models:
            m.fuse_for_decoding()

    def encoding_products(self):
        return [pair for m in self.models for pair in m.encoding_products()]

    def encode(self, src):
        return tuple(m.encode(src) for m in self.models)

    def init_state(self, memory):
        return tuple(m.init_state(mem) for m, mem in zip(self.models, memory, strict=True))

    def decode_step(self, prev_tokens, memory, state):
        lprobs, new_state = [], []
        for m, mem, st in zip(self.models, memory, state, strict=True):
            logits, st = m.decode_step(prev_tokens, mem, st)
            lprobs.append(F.log_softmax(logits.float(), dim=-1))
            new_state.append(st)
        # Mean log-probability; the search's log_softmax renormalizes it.
        return torch.stack(lprobs).mean(0), tuple(new_state)

    def reorder(self, state, index):
        return tuple(m.reorder(st, index) for m, st in zip(self.models, state, strict=True))
