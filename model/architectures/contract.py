"""The model contract: what search, ensembles and training use of any architecture (Transformer, RNN),
written down once. The decoder state is an explicit value passed in and returned, never hidden in modules.

Every architecture states its capabilities, even when it has nothing to offer (the RNN fuses nothing and
moves no layer), so nothing downstream probes for them by name.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class DecodingModel(Protocol):
    # The architecture's frozen config dataclass, stored in every checkpoint: pad_id, bos_id, eos_id,
    # source_pad_id (the source's padding id where the vocabularies differ), max_positions (0: any length),
    # src_vocab_size, tgt_vocab_size.
    cfg: Any
    shares_memory_across_beams: bool  # True: the beams of a sentence read one encoder-memory row (by index)

    def encode(self, src: torch.Tensor) -> Any:
        """Encoder memory for right-padded source ids (B, S)."""

    def init_state(self, memory: Any) -> Any:
        """The decoder state before the first step."""

    def decode_step(self, prev_tokens: torch.Tensor, memory: Any, state: Any) -> tuple[torch.Tensor, Any]:
        """(logits (B, V) of the next token, the new state) after `prev_tokens`."""

    def reorder(self, state: Any, index: torch.Tensor) -> Any:
        """The state of the rows `index` (beams that survive, sentences still decoding)."""

    def fuse_for_decoding(self) -> None:
        """Inference-only rewrites in place (the Transformer's fused q/k/v products); may do nothing."""

    def encoding_products(self) -> list[tuple[torch.nn.Module, str]]:
        """(module, attribute) of the linear layers `encode` runs, which pipeline/runtime/blas.py may move."""

    def cross_attention(self, src: torch.Tensor, tgt_in: torch.Tensor, layer: int = -1) -> torch.Tensor | None:
        """Teacher forcing, for alignment (inline markup, pipeline/documents/markup/tags.py): the attention
        (B, T, S) each target position pays the source; None where the architecture has none to give."""

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, mix=None) -> torch.Tensor:
        """Teacher forcing: logits (B, T, V) for target inputs (B, T)."""
