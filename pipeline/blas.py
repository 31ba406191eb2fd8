"""Which BLAS computes the vocabulary projection of a CPU translation actor.

The output projection, (rows x D) @ (D x V) with V in the thousands, is the largest matrix product
of a decoding step (26% of the shipped model's decoding time at 1 thread). torch's x86 wheels run it
through MKL, whose sgemm takes its fast paths by CPU vendor: on the AMD EPYC machines of this
project it reaches 41 GFLOP/s on that shape at one thread, where OpenBLAS (numpy's BLAS) reaches
62-65 on the same core. CTranslate2 avoids MKL on AMD for the same reason (it logs "Use Intel MKL:
false" there and runs oneDNN). The smaller products of the layers run alike in both libraries
(within ~10%, MKL ahead), so only vocabulary-wide layers move.

`--cpu-blas auto` moves them on AMD CPUs when numpy's BLAS is OpenBLAS and the actor runs one torch
thread (the CPU actors' default), and leaves Intel CPUs (MKL's home ground, not measured here) and
other architectures to torch. OpenBLAS runs its product on the calling thread only: with torch's
OpenMP threads beside OpenBLAS's own pthreads, each pool spun while the other worked, and a 2-thread
decoder fell from ~1,200 to 454 target tokens/s. So with more torch threads `auto` keeps MKL, whose
threads are torch's. The results agree with MKL's to float32 rounding: the test set's translations
are token-identical.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from pipeline.settings import CPU_BLAS


class OpenBLASLinear(nn.Module):
    """An inference-only copy of an fp32 nn.Linear whose product runs in numpy's BLAS."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # (D, V), contiguous: the layout BLAS reads fastest for x @ W^T. A copy, so a tied embedding
        # keeps its own table.
        self.weight_t = linear.weight.detach().t().contiguous().numpy()
        self.bias = None if linear.bias is None else linear.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1]).detach().numpy()  # (N, D), no copy when contiguous
        out = torch.from_numpy(flat @ self.weight_t)  # (N, V)
        if self.bias is not None:
            out.add_(self.bias)
        return out.view(*shape[:-1], self.out_features)


@functools.cache
def numpy_blas() -> str:
    """The BLAS numpy calls ("openblas", "mkl", ...), "" if none is found."""
    import numpy  # noqa: F401  (loads numpy's BLAS so threadpoolctl can see it)
    from threadpoolctl import threadpool_info

    return next((pool["internal_api"] for pool in threadpool_info() if pool["user_api"] == "blas"), "")


def cpu_vendor() -> str:
    """x86 vendor string (GenuineIntel, AuthenticAMD, ...) from /proc/cpuinfo; "" elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def resolve_cpu_blas(choice: str, threads: int = 1) -> str:
    """"torch" or "openblas" for this machine and an actor of `threads` torch threads; ValueError for an
    unknown choice or a missing OpenBLAS."""
    if choice not in CPU_BLAS:
        raise ValueError(f"cpu_blas must be one of {CPU_BLAS}, got {choice!r}")
    has_openblas = numpy_blas() == "openblas"
    if choice == "openblas" and not has_openblas:
        raise ValueError(f"--cpu-blas openblas needs numpy built with OpenBLAS (numpy's BLAS: {numpy_blas()!r})")
    if choice == "auto":
        return "openblas" if has_openblas and cpu_vendor() == "AuthenticAMD" and threads == 1 else "torch"
    return choice


def use_openblas(model: nn.Module) -> int:
    """Move `model`'s fp32 vocabulary projection (its `output` layer, as in every model of model/) to
    OpenBLAS, in place; returns how many layers moved (0 or 1).

    OpenBLAS is held to the calling thread (its own pool would compete with torch's OpenMP threads).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    layer = getattr(model, "output", None)
    if type(layer) is not nn.Linear or layer.weight.dtype != torch.float32 or layer.weight.device.type != "cpu":
        return 0
    model.output = OpenBLASLinear(layer)
    return 1
