"""Checkpoint averaging: the mean of the last N checkpoints' weights (Vaswani et al. 2017 averaged
the last 5 or 20; fairseq's average_checkpoints.py). Usually worth a few tenths of BLEU for free."""

from __future__ import annotations

import torch

from model.checkpoint import Checkpoint, load_checkpoint


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    if not states:
        raise ValueError("nothing to average")
    keys = states[0].keys()
    for s in states[1:]:
        if s.keys() != keys:
            raise ValueError("checkpoints to average have different parameters")
    return {k: torch.stack([s[k].float() for s in states]).mean(0) if states[0][k].is_floating_point()
            else states[-1][k] for k in keys}


def average_checkpoints(ray_checkpoints) -> Checkpoint:
    """Average Ray Train checkpoints (model directories); returns the averaged model and its tokenizer."""
    loaded = []
    for rc in ray_checkpoints:
        with rc.as_directory() as d:
            loaded.append(load_checkpoint(d))
    base = loaded[-1]
    base.model.load_state_dict(average_state_dicts([c.model.state_dict() for c in loaded]))
    return base
