"""Scheduled sampling (Bengio et al., 2015): train on the model's own predictions, a little more each update.

Teacher forcing always feeds the reference token, so at inference the model meets its own mistakes for
the first time. Scheduled sampling feeds, at each target position, the model's own prediction with
probability 1 - eps_i, where the teacher-forcing rate eps_i decays with the update number i:

    linear            eps_i = max(eps, k - c * i)          (k <= 1, c > 0)
    exponential       eps_i = k ** i                       (0 < k < 1)
    inverse sigmoid   eps_i = k / (k + exp(i / k))         (k >= 1)

`eps` (`--ss-min-teacher-forcing`) bounds every schedule from below, as it does the linear one in the
paper. How a model mixes the tokens is its own business (`forward(src, tgt_in, mix=...)`): the
recurrent models step by step, the Transformer in two passes. This module decides which positions get
the model's token and counts them.

A rate of zero never reaches the model: `mixer` returns None and training is exactly teacher forcing.
The decisions draw from their own generator, seeded by the update number, so they neither shift the
dropout masks nor change when a run is resumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from model.config_fields import arg

SCHEDULES = ("none", "linear", "exponential", "inverse_sigmoid")
PICKS = ("sample", "argmax")


@dataclass(frozen=True)
class ScheduledSampling:
    """When and how the model's own tokens replace the reference inputs during training."""

    scheduled_sampling: str = arg("none", help="decay of the teacher-forcing rate eps_i over updates i: "
                                  "linear max(eps, k - c*i), exponential k**i, inverse_sigmoid k/(k + exp(i/k)) "
                                  "(Bengio et al. 2015); none: always teacher forcing", choices=SCHEDULES)
    ss_k: float = arg(1.0, help="schedule constant k: linear start (<= 1), exponential base (0 < k < 1), "
                      "inverse sigmoid steepness (>= 1; eps_i is 1/2 near i = k ln k)")
    ss_c: float = arg(1e-4, help="linear schedule: decay of the teacher-forcing rate per update")
    ss_min_teacher_forcing: float = arg(0.0, help="the teacher-forcing rate never falls below this (eps)")
    ss_token: str = arg("sample", help="the model's token: sampled from its output distribution (Bengio et al.) "
                        "or its argmax", choices=PICKS)

    def __post_init__(self):
        kind, k = self.scheduled_sampling, self.ss_k
        if kind not in SCHEDULES:
            raise ValueError(f"--scheduled-sampling must be one of {SCHEDULES}, got {kind!r}")
        if self.ss_token not in PICKS:
            raise ValueError(f"--ss-token must be one of {PICKS}, got {self.ss_token!r}")
        if not 0.0 <= self.ss_min_teacher_forcing <= 1.0:
            raise ValueError("--ss-min-teacher-forcing must be in [0, 1]")
        if kind == "linear" and not (0.0 <= k <= 1.0 and self.ss_c >= 0.0):
            raise ValueError("linear scheduled sampling needs 0 <= --ss-k <= 1 and --ss-c >= 0")
        if kind == "exponential" and not 0.0 < k < 1.0:
            raise ValueError(f"exponential scheduled sampling needs 0 < --ss-k < 1, got {k}")
        if kind == "inverse_sigmoid" and k < 1.0:
            raise ValueError(f"inverse_sigmoid scheduled sampling needs --ss-k >= 1, got {k}")

    def teacher_forcing_rate(self, update: int) -> float:
        """eps_i: the probability that position t of update i is fed the reference token."""
        kind, k, i = self.scheduled_sampling, self.ss_k, update
        if kind == "none":
            return 1.0
        if kind == "linear":
            eps = k - self.ss_c * i
        elif kind == "exponential":
            eps = k**i
        else:  # exp(i/k) overflows a float near i/k = 710, where eps is 0 long since
            eps = k / (k + math.exp(i / k)) if i / k < 700 else 0.0
        return max(self.ss_min_teacher_forcing, eps)

    def mixer(self, update: int, seed: int, device, pad_id: int) -> TokenMixer | None:
        """The token mixer of one update; None when the reference is fed everywhere (plain teacher forcing).

        `seed` should differ between DDP workers, so that each makes its own draws."""
        rate = 1.0 - self.teacher_forcing_rate(update)
        if rate <= 0.0:
            return None
        generator = torch.Generator(device=device)
        generator.manual_seed(seed * 1_000_003 + update)
        return TokenMixer(rate, self.ss_token, generator, pad_id)


class TokenMixer:
    """Feeds the model's token instead of the reference with probability `rate`, and counts both.

    Called by a model's forward with the reference inputs of some positions and the logits that
    predicted them; padding is never replaced and never counted.
    """

    def __init__(self, rate: float, pick: str, generator: torch.Generator, pad_id: int):
        self.rate, self.pick, self.generator, self.pad_id = rate, pick, generator, pad_id
        self._sampled: torch.Tensor | int = 0  # tensors: no device sync per decoder step
        self._eligible: torch.Tensor | int = 0

    def __call__(self, reference: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """reference (B, T) token ids, logits (B, T, V) that predicted them -> mixed inputs (B, T)."""
        with torch.no_grad():
            if self.pick == "argmax":
                own = logits.argmax(-1)
            else:
                probs = torch.softmax(logits.float(), dim=-1).reshape(-1, logits.size(-1))
                own = torch.multinomial(probs, 1, generator=self.generator).view(reference.shape)
            real = reference.ne(self.pad_id)
            coin = torch.rand(reference.shape, generator=self.generator, device=reference.device)
            use_own = (coin < self.rate) & real
            self._sampled = self._sampled + use_own.sum()
            self._eligible = self._eligible + real.sum()
            return torch.where(use_own, own, reference)

    @property
    def counts(self) -> tuple[int, int]:
        """(positions fed the model's token, positions that could have been)."""
        return int(self._sampled), int(self._eligible)
