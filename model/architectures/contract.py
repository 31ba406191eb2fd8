"""The model contract: what search, ensembles and training use of any architecture (Transformer, RNN),
written down once. The decoder state is an explicit value passed in and returned, never hidden in modules.

Optional, where an architecture offers it (looked up by name, absent elsewhere): `fuse_for_decoding()`
(inference-only rewrites), `shares_memory_across_beams` (encoder memory read by row index), and
`encoding_products()` (the layers the CPU BLAS choice moves).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class DecodingModel(Protocol):
    cfg: Any  # the architecture's frozen config dataclass (pad_id, eos_id, ...), stored in every checkpoint

    def encode(self, src: torch.Tensor) -> Any:
        """Encoder memory for right-padded source ids (B, S)."""

    def init_state(self, memory: Any) -> Any:
        """The decoder state before the first step."""

    def decode_step(self, prev_tokens: torch.Tensor, memory: Any, state: Any) -> tuple[torch.Tensor, Any]:
        """(logits (B, V) of the next token, the new state) after `prev_tokens`."""

    def reorder(self, state: Any, index: torch.Tensor) -> Any:
        """The state of the rows `index` (beams that survive, sentences still decoding)."""

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, mix=None) -> torch.Tensor:
        """Teacher forcing: logits (B, T, V) for target inputs (B, T)."""
