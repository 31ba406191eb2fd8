"""Training state on disk without pickle: optimizer moments in safetensors, counters in JSON.

Checkpoints come back from shared storage on resume; like model weights, they
must never run code when loaded.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass

import torch
from safetensors.torch import load_file, save_file

OPTIMIZER = "optimizer.safetensors"
OPTIMIZER_META = "optimizer.json"
TRAINER_STATE = "trainer_state.json"


@dataclass
class TrainState:
    step: int = 0  # optimizer updates done
    epoch: int = 0  # current epoch, 0-based
    updates_in_epoch: int = 0  # updates done inside the current epoch (fast-forward on resume)
    target_tokens: int = 0  # target tokens trained on, all workers
    seconds: float = 0.0  # training wall time, summed over resumed runs
    best_bleu: float = -1.0
    best_step: int = 0
    bad_validations: int = 0  # validations since the last improvement (patience)


def inverse_sqrt_lr(step: int, peak: float, warmup: int) -> float:
    """Linear warmup to `peak`, then decay with 1/sqrt(step) (Vaswani et al. 2017, eq. 3)."""
    step = max(step, 1)
    if warmup <= 0:
        return peak
    return peak * min(step / warmup, math.sqrt(warmup / step))


def save_training_state(directory: str, optimizer: torch.optim.Optimizer, state: TrainState) -> None:
    sd = optimizer.state_dict()
    tensors = {}
    for idx, slots in sd["state"].items():
        for key, value in slots.items():
            tensors[f"{idx}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    save_file(tensors, os.path.join(directory, OPTIMIZER))
    with open(os.path.join(directory, OPTIMIZER_META), "w") as f:
        json.dump({"param_groups": sd["param_groups"]}, f)
    with open(os.path.join(directory, TRAINER_STATE), "w") as f:
        json.dump(asdict(state), f, indent=2)


def load_training_state(directory: str, optimizer: torch.optim.Optimizer) -> TrainState:
    tensors = load_file(os.path.join(directory, OPTIMIZER))
    with open(os.path.join(directory, OPTIMIZER_META)) as f:
        groups = json.load(f)["param_groups"]
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        slots.setdefault(int(idx), {})[key] = value
    optimizer.load_state_dict({"state": slots, "param_groups": groups})
    with open(os.path.join(directory, TRAINER_STATE)) as f:
        return TrainState(**json.load(f))
