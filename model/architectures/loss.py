"""Training loss for teacher-forced seq2seq models."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def label_smoothed_loss(logits: torch.Tensor, target: torch.Tensor, pad_id: int, smoothing: float):
    """Summed label-smoothed cross-entropy and plain NLL over non-pad target tokens.

    logits (B, T, V), target (B, T). Label smoothing (Szegedy et al. 2016;
    0.1 in Vaswani et al. 2017) spreads `smoothing` of the mass uniformly.
    Returns (loss_sum, nll_sum, n_tokens); callers divide by the token count
    they want (per batch, or across gradient-accumulation steps and workers).
    """
    flat = logits.reshape(-1, logits.size(-1)).float()  # (B*T, V)
    tgt = target.reshape(-1)
    loss = F.cross_entropy(flat, tgt, ignore_index=pad_id, label_smoothing=smoothing, reduction="sum")
    with torch.no_grad():
        nll = F.cross_entropy(flat, tgt, ignore_index=pad_id, reduction="sum")
    return loss, nll, int(tgt.ne(pad_id).sum())
