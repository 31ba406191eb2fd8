"""The Transformer decoder's self-attention caches: the keys/values of every target position decoded so far.

The search picks surviving rows after every step (`reordered`). Two layouts serve that:

- TransformerState, one (rows, H, T, d) block per layer, gathered into the new row order by the next
  step. Runs anywhere (GPU, half precision) with torch alone.
- StepCache, each step's keys/values left where its projection wrote them, plus each row's ancestry
  (the row it descends from at every earlier step), read in place by a C kernel
  (model/kernels/attention.c). On CPU the gather read and wrote the whole cache per layer per step:
  ~14% of decoding inputs of ~45 tokens on a 2-core VM. The ancestry is (rows, T) int32, shared by
  all layers.

Both are immutable as the search sees them: `layers()` hands each decoder layer its part, the layer's
`attend` returns its extended part, and `advanced` makes the next state of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from model.kernels import cpu_kernels


def extend_cache(past: torch.Tensor, new: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """torch.cat([past[rows], new], dim=2) with one copy of the past: past (B0, H, T, d), new
    (B, H, Tq, d), rows (B,) or None (past's rows as they are) -> (B, H, T + Tq, d)."""
    T = past.size(2)
    out = new.new_empty(new.size(0), new.size(1), T + new.size(2), new.size(3))
    if rows is None:
        out[:, :, :T].copy_(past)
    else:
        torch.index_select(past, 0, rows, out=out[:, :, :T])  # writes through the strided view
    out[:, :, T:].copy_(new)
    return out


@dataclass(frozen=True)
class GatheredLayerCache:
    k: torch.Tensor  # (rows before `rows` is applied, H, T, d)
    v: torch.Tensor
    rows: torch.Tensor | None  # (B,) cached row of each decoding row; None: row r is row r

    def attend(self, attn, h: torch.Tensor):
        """attn (MultiHeadAttention) attends from h (B, 1, D) over the cache and h's own position:
        (attended (B, 1, D), the extended cache)."""
        q, k, v = attn.project_qkv(h)
        k = extend_cache(self.k, k, self.rows)  # (B, H, T+1, d)
        v = extend_cache(self.v, v, self.rows)
        return attn.attend_queries(q, k, v, None), GatheredLayerCache(k, v, None)


@dataclass(frozen=True)
class TransformerState:
    """The gathered cache. `reordered` only records the surviving rows in `rows` (row r continues cached
    row rows[r]); the next step gathers them straight into the cache it extends. Copying the rows out
    (index_select) and then the reordered cache into a longer one (cat) read and wrote the whole cache
    twice per step: at ~10 GB/s of memory bandwidth the second copy cost more than the step's attention.
    """

    self_k: tuple[torch.Tensor, ...]  # per layer (rows before `rows` is applied, H, T, d)
    self_v: tuple[torch.Tensor, ...]
    step: int  # number of target tokens already fed
    rows: torch.Tensor | None = None  # (B,) cached row of each decoding row; None: row r is row r

    def layers(self) -> list[GatheredLayerCache]:
        return [GatheredLayerCache(k, v, self.rows) for k, v in zip(self.self_k, self.self_v, strict=True)]

    def advanced(self, layers: list[GatheredLayerCache]) -> TransformerState:
        return TransformerState(tuple(c.k for c in layers), tuple(c.v for c in layers), self.step + 1)

    def reordered(self, index: torch.Tensor) -> TransformerState:
        return replace(self, rows=index if self.rows is None else self.rows.index_select(0, index))


class StepLog:
    """One layer's keys (or values) of every step: the tensors, kept alive, and their addresses, which the
    kernel reads. Append-only and shared by the states of one search: a state at step t reads entries
    0 .. t-1, so later appends never change what an earlier state sees. A second step from the same
    state (a branch) copies the log first.
    """

    def __init__(self, stride: int | None = None, tensors: list | None = None, addresses: torch.Tensor | None = None):
        self.stride = stride  # floats between a step's rows; the same for every step
        self.tensors = tensors or []
        self.addresses = addresses if addresses is not None else torch.zeros(64, dtype=torch.int64)

    def appended(self, step: int, rows: torch.Tensor) -> StepLog:
        """The log with rows (B, D) as entry `step` (entries 0 .. step-1 as they are)."""
        if self.stride is None:
            self.stride = rows.stride(0)
        if rows.stride(0) != self.stride or rows.stride(1) != 1:  # an unusual view: lay it out as the others
            rows = torch.empty(rows.size(0), self.stride, dtype=rows.dtype)[:, :rows.size(1)].copy_(rows)
        log = self
        if len(self.tensors) != step:  # a branch from an earlier state
            log = StepLog(self.stride, self.tensors[:step], self.addresses.clone())
        if step == log.addresses.numel():
            log.addresses = torch.cat([log.addresses, torch.zeros_like(log.addresses)])
        log.tensors.append(rows)
        log.addresses[step] = rows.data_ptr()
        return log


@dataclass(frozen=True)
class StepLayerCache:
    keys: StepLog
    values: StepLog
    ancestry: torch.Tensor  # (B, T+1) int32: row r's row at each step, this one's included
    step: int  # T: positions before this step's

    def attend(self, attn, h: torch.Tensor):
        """As GatheredLayerCache.attend, through the C kernel."""
        q, k, v = attn.project_rows(h[:, 0])  # (B, D) each
        keys, values = self.keys.appended(self.step, k), self.values.appended(self.step, v)
        T = self.step + 1
        out = cpu_kernels.step_attention(q, keys.addresses[:T], values.addresses[:T], keys.stride, values.stride,
                                         self.ancestry, attn.n_heads)
        return attn.out_proj(out)[:, None], replace(self, keys=keys, values=values)


@dataclass(frozen=True)
class StepCache:
    keys: tuple[StepLog, ...]  # per layer
    values: tuple[StepLog, ...]
    ancestry: torch.Tensor  # (B, step) int32: the row each row descends from at every step so far
    step: int  # number of target tokens already fed

    @staticmethod
    def empty(rows: int, n_layers: int) -> StepCache:
        return StepCache(tuple(StepLog() for _ in range(n_layers)), tuple(StepLog() for _ in range(n_layers)),
                         torch.zeros(rows, 0, dtype=torch.int32), 0)

    def layers(self) -> list[StepLayerCache]:
        B = self.ancestry.size(0)
        # Each row's own position of this step is its own row of this step's keys/values.
        ancestry = torch.cat([self.ancestry, torch.arange(B, dtype=torch.int32)[:, None]], dim=1)
        return [StepLayerCache(k, v, ancestry, self.step) for k, v in zip(self.keys, self.values, strict=True)]

    def advanced(self, layers: list[StepLayerCache]) -> StepCache:
        return StepCache(tuple(c.keys for c in layers), tuple(c.values for c in layers), layers[0].ancestry,
                         self.step + 1)

    def reordered(self, index: torch.Tensor) -> StepCache:
        return replace(self, ancestry=self.ancestry.index_select(0, index))
