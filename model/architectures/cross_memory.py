"""What the Transformer decoder keeps of the encoder: each decoder layer's cross-attention keys/values.

The cross-attention projections depend only on the source, so `Transformer.encode` computes them once
per batch rather than at every decoding step. Two layouts, as for the self-attention caches
(model/architectures/decoder_cache.py):

- TransformerMemory, per layer the keys and values (B, H, S, d), each stored in the layout its device's
  attention reads fastest (`decoding_layout`). Runs anywhere; training reads it.
- RowMemory, the same tensors read by a C kernel (model/kernels/attention.c) for all the beams of a
  sentence at once, plus the rows of the sentences still decoding. In torch, each sentence that finished
  copied every layer's keys and values out of the memory (select_rows), and a step's attention ran as
  two small batched matmuls, a mask and a softmax; here a finished sentence only leaves the index, and
  the kernel loads each key and value vector once for four queries. The reads of the keys and values
  bound both (the memory of a batch of long inputs does not fit in cache): on 300 long inputs at one
  thread the attention took 0.58-0.66 s against torch's 0.59-0.73 s, and the copies 0.003 s against
  0.06-0.08 s, ~2% of decoding in all; translations are token-identical.

Both give the decoder layers the same thing: `layers()`, one object per layer whose `attend(attn, h)`
is the cross-attention of the queries h.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from model.kernels import cpu_kernels


@dataclass(frozen=True)
class GatheredCross:
    k: torch.Tensor  # (B, H, S, d)
    v: torch.Tensor  # (B, H, S, d)
    mask: torch.Tensor  # (B, 1, 1, S) True at real tokens

    def attend(self, attn, h: torch.Tensor) -> torch.Tensor:
        """attn (MultiHeadAttention) attends from h (N, Tq, D) over the source: (N, Tq, D)."""
        return attn.attend(h, self.k, self.v, self.mask)


@dataclass
class TransformerMemory:
    pad_mask: torch.Tensor  # (B, S) True at real tokens
    # Per layer the keys and the values, (B, H, S, d): views laid out by `decoding_layout` when decoding,
    # the projections' own views when training.
    cross_k: tuple[torch.Tensor, ...]
    cross_v: tuple[torch.Tensor, ...]

    @property
    def sentences(self) -> int:
        return self.pad_mask.size(0)

    def layers(self) -> list[GatheredCross]:
        mask = self.pad_mask[:, None, None, :]
        return [GatheredCross(k, v, mask) for k, v in zip(self.cross_k, self.cross_v, strict=True)]


def decoding_layout(k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values (B, H, S, d) of a decoding memory, stored once per batch in the layout every step
    reads without a copy.

    CPU: the keys transposed in memory, (B, H, d, S) contiguous, the values contiguous: what a step's two
    batched matmuls (q @ k^T, p @ v) read; as the projection leaves them (heads a strided view of
    (B, S, D)) matmul copied every layer's keys and values at every step, and long inputs decoded 2-5%
    slower. GPU: both contiguous with the head dimension last (stride 1), which scaled_dot_product_attention's
    fused kernels (memory-efficient, flash) require; given transposed keys it falls back to the math
    kernel, which materializes the scores and upcasts half precision, at every layer and step.
    """
    if k.device.type == "cpu":
        return k.transpose(-1, -2).contiguous().transpose(-1, -2), v.contiguous()
    return k.contiguous(), v.contiguous()


@dataclass(frozen=True)
class RowCross:
    kt: torch.Tensor  # (B0, H, d, S)
    v: torch.Tensor  # (B0, H, S, d)
    lengths: torch.Tensor  # (B0,) int32
    rows: torch.Tensor  # (B,) int32: the memory row of each sentence still decoding

    def attend(self, attn, h: torch.Tensor) -> torch.Tensor:
        """As GatheredCross.attend (h (N, Tq, D), N a multiple of B), through the kernel."""
        N, Tq, D = h.shape
        # A sentence's N / B beams are adjacent rows (the search's layout; 1 before the beam expands), and
        # each row's Tq queries (teacher forcing, Tq > 1) are adjacent once flattened: one group each.
        q = attn.q_proj(h.reshape(N * Tq, D))
        out = cpu_kernels.cross_attention(q, self.kt, self.v, self.rows, self.lengths)
        return attn.out_proj(out).view(N, Tq, D)


@dataclass(frozen=True)
class RowMemory:
    """TransformerMemory's contiguous tensors, read by the kernel, and the rows of the sentences still
    decoding (`select_rows` narrows them; the tensors keep every sentence of the batch)."""

    cross_kt: tuple[torch.Tensor, ...]  # per layer (B0, H, d, S), contiguous
    cross_v: tuple[torch.Tensor, ...]  # per layer (B0, H, S, d), contiguous
    lengths: torch.Tensor  # (B0,) int32, each sentence's real tokens: within 1 .. S (the kernel trusts it)
    rows: torch.Tensor  # (B,) int32: the memory row of each sentence still decoding, in the search's order

    @staticmethod
    def of(memory: TransformerMemory) -> RowMemory | None:
        """The kernel's view of a decoding memory (contiguous tensors); None where a sentence is empty or
        is padded elsewhere than at its end (the kernel reads each sentence's first `lengths` positions)."""
        pad_mask = memory.pad_mask
        B, S = pad_mask.shape
        lengths = pad_mask.sum(1)
        if B == 0 or int(lengths.min()) < 1 or not torch.equal(pad_mask, torch.arange(S) < lengths[:, None]):
            return None
        cross_kt = tuple(k.transpose(-1, -2) for k in memory.cross_k)  # contiguous: decoding_layout on CPU
        if not all(kt.is_contiguous() for kt in cross_kt):
            return None
        return RowMemory(cross_kt, memory.cross_v, lengths.to(torch.int32), torch.arange(B, dtype=torch.int32))

    @property
    def sentences(self) -> int:
        return self.rows.numel()

    def select_rows(self, index: torch.Tensor) -> RowMemory:
        """Sentences `index` of those still decoding (architectures/row_selection.py): the index shrinks, nothing is
        copied."""
        return replace(self, rows=self.rows.index_select(0, index))

    def layers(self) -> list[RowCross]:
        return [RowCross(kt, v, self.lengths, self.rows) for kt, v in zip(self.cross_kt, self.cross_v, strict=True)]


def encoder_memory(pad_mask: torch.Tensor, cross: list[tuple[torch.Tensor, torch.Tensor]], heads: int, training: bool
                   ) -> TransformerMemory | RowMemory:
    """The memory of one encoded batch: pad_mask (B, S); cross, each decoder layer's keys and values as
    projected, (B, S, D), of `heads` heads.

    RowMemory when decoding on CPU in fp32 with the kernels built (and the batch right-padded);
    TransformerMemory otherwise."""

    def split(t: torch.Tensor) -> torch.Tensor:  # (B, S, D) -> (B, H, S, d)
        B, S, D = t.shape
        return t.view(B, S, heads, D // heads).transpose(1, 2)

    heads_of = [(split(k), split(v)) for k, v in cross]
    # Training reads the memory once per batch: the views as projected keep it bit-identical.
    if not training:
        heads_of = [decoding_layout(k, v) for k, v in heads_of]
    memory = TransformerMemory(pad_mask=pad_mask, cross_k=tuple(k for k, _ in heads_of),
                               cross_v=tuple(v for _, v in heads_of))
    if not training and cross and cpu_kernels.apply_to(cross[0][0]):
        return RowMemory.of(memory) or memory
    return memory
