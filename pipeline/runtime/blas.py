"""Which BLAS computes the fp32 products of a CPU translation actor.

The output projection, (rows x D) @ (D x V) with V in the thousands, is the largest matrix product
of a decoding step (26% of the shipped model's decoding time at 1 thread). torch's x86 wheels run it
through MKL, whose sgemm takes its fast paths by CPU vendor: on the AMD EPYC machines of this
project it reaches 41 GFLOP/s on that shape at one thread, where OpenBLAS (numpy's BLAS) reaches
62-65 on the same core. CTranslate2 avoids MKL on AMD for the same reason (it logs "Use Intel MKL:
false" there and runs oneDNN). The encoding's products, every source token of a batch at once, move
too: at thousands of rows OpenBLAS ran them at ~100 GFLOP/s where MKL ran ~45. A decoding step's
smaller layer products run alike in both libraries in the decoder (0.98-1.03x), so they stay in torch.

`--cpu-blas auto` moves them on AMD CPUs without AVX-512 when numpy's BLAS is OpenBLAS and the actor
runs one torch thread (the CPU actors' default), and leaves Intel CPUs (MKL's home ground, not measured here) and
other architectures to torch. OpenBLAS runs its product on the calling thread only: with torch's
OpenMP threads beside OpenBLAS's own pthreads, each pool spun while the other worked, and a 2-thread
decoder fell from ~1,200 to 454 target tokens/s. So with more torch threads `auto` keeps MKL, whose
threads are torch's. The results agree with MKL's to float32 rounding: the test set's translations
are token-identical.

With more torch threads `auto` moves every fp32 linear layer to oneDNN instead (`onednn`; torch's
own mkldnn kernels, the library CTranslate2 runs on AMD), which parallelises on torch's OpenMP threads
where MKL's small products do not: at 2 threads on the shipped model's decoding shapes it reached
80-150 GFLOP/s where MKL reached 30-120, and the whole decoder ran 1.12-1.22x faster (in-process
interleaved runs, short and long inputs), token-identical on test_2016_flickr. At one thread on those
AVX2 cores oneDNN and MKL ran alike, and OpenBLAS's vocabulary projection stayed the faster choice.

AMD CPUs with AVX-512 (Zen 4 EPYC) go to oneDNN at any thread count: MKL keeps its AVX2 code on AMD,
while oneDNN picks its kernels by instruction set. At one thread on a 2-core Zen 4 VM oneDNN ran every
product of the shipped model fastest: 97-107 GFLOP/s on a decoding step's layer products against MKL's
89-99, 99-100 on the vocabulary projection against OpenBLAS's 87-92 (272-680 rows), 90-110 on the
encoding's against OpenBLAS's 83-95; the 1-thread decoder ran 1.12x (captions) and 1.04x (inputs of
~45 tokens) faster than with OpenBLAS's projection, token-identical (in-process interleaved runs).
"""

from __future__ import annotations

import functools
import os

import torch
from torch import nn

from model.kernels import cpu_flags, cpu_vendor
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


# The rows oneDNN lays the packed weights out for: a decoding step's products have from a few rows to
# a few hundred (live beams); any row count computes correctly, this only picks the blocking.
_ONEDNN_ROWS_HINT = 128


def onednn_available() -> bool:
    """torch's build has oneDNN (mkldnn) with the packed linear ops this module calls."""
    mkldnn_ops = getattr(torch.ops, "mkldnn", None)
    return (torch.backends.mkldnn.is_available()
            and all(hasattr(mkldnn_ops, op) for op in ("_reorder_linear_weight", "_linear_pointwise")))


class OneDNNLinear(nn.Module):
    """An inference-only copy of an fp32 nn.Linear whose product runs in oneDNN, on torch's threads."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # oneDNN's own blocked layout, packed once (a copy: a tied embedding keeps its table).
        dense = linear.weight.detach().float().contiguous()
        self.packed = torch.ops.mkldnn._reorder_linear_weight(dense, _ONEDNN_ROWS_HINT)
        self.bias = None if linear.bias is None else linear.bias.detach().float().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def __deepcopy__(self, memo):  # a packed tensor has no storage to copy: repack from its dense form
        dense = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        with torch.no_grad():
            dense.weight.copy_(self.packed.to_dense())
            if self.bias is not None:
                dense.bias.copy_(self.bias)
        return OneDNNLinear(dense)


@functools.cache
def numpy_blas() -> str:
    """The BLAS numpy calls ("openblas", "mkl", ...), "" if none is found."""
    import numpy  # noqa: F401  (loads numpy's BLAS so threadpoolctl can see it)
    from threadpoolctl import threadpool_info

    return next((pool["internal_api"] for pool in threadpool_info() if pool["user_api"] == "blas"), "")


def resolve_cpu_blas(choice: str, threads: int = 1) -> str:
    """"torch", "openblas" or "onednn" for this machine and an actor of `threads` torch threads;
    ValueError for an unknown choice or a library this machine lacks."""
    if choice not in CPU_BLAS:
        raise ValueError(f"cpu_blas must be one of {CPU_BLAS}, got {choice!r}")
    has_openblas = numpy_blas() == "openblas"
    if choice == "openblas" and not has_openblas:
        raise ValueError(f"--cpu-blas openblas needs numpy built with OpenBLAS (numpy's BLAS: {numpy_blas()!r})")
    if choice == "onednn" and not onednn_available():
        raise ValueError(f"--cpu-blas onednn needs torch built with oneDNN (torch {torch.__version__} is not)")
    if choice == "auto":
        if cpu_vendor() != "AuthenticAMD":  # Intel is MKL's home ground; elsewhere torch knows best
            return "torch"
        if onednn_available() and (threads > 1 or "avx512f" in cpu_flags()):
            return "onednn"
        return "openblas" if has_openblas and threads == 1 else "torch"
    return choice


def use_cpu_blas(model: nn.Module, choice: str) -> int:
    """Move `model`'s products to the resolved `choice` ("torch": none move); returns how many moved."""
    if choice == "openblas":
        return use_openblas(model)
    if choice == "onednn":
        return use_onednn(model)
    return 0


# oneDNN caches a compiled primitive per product shape, and a decoding step's row count changes as beams
# finish, so the default cache (1,024) fills with shapes that never return: +110 MB of peak memory on a
# 2-thread actor of the shipped model (686 -> 571 MB), no faster. One step's products (~6 shapes) fit in 8.
# oneDNN reads the variable when it builds its first primitive; a value the user set is kept.
_ONEDNN_CACHE = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8")


def use_onednn(model: nn.Module) -> int:
    """Replace every fp32 CPU nn.Linear of `model` by a OneDNNLinear, in place; returns how many moved."""
    os.environ.setdefault(*_ONEDNN_CACHE)
    moved = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Linear and child.weight.dtype == torch.float32 and child.weight.device.type == "cpu":
                setattr(module, name, OneDNNLinear(child))
                moved += 1
    return moved


def use_openblas(model: nn.Module) -> int:
    """Move `model`'s fp32 vocabulary projection (its `output` layer, as in every model of model/) and the
    products of its encoding (the family's `encoding_products`, if it has them) to OpenBLAS, in place;
    returns how many layers moved.

    Encoding multiplies every source token of a batch at once: at those thousands of rows OpenBLAS ran
    ~2x MKL's GFLOP/s on this project's AMD VMs, and inputs of ~45 tokens decoded 1.06x faster (captions,
    whose encoding is a small share, even). A decoding step's smaller products stay in MKL: all of them in
    OpenBLAS measured 0.98-1.03x. OpenBLAS is held to the calling thread (its own pool would compete with
    torch's OpenMP threads).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    moved = 0
    for parent, name in [(model, "output"), *model.encoding_products()]:
        layer = getattr(parent, name)
        if type(layer) is nn.Linear and layer.weight.dtype == torch.float32 and layer.weight.device.type == "cpu":
            setattr(parent, name, OpenBLASLinear(layer))
            moved += 1
    return moved
