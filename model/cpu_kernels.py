"""The CPU beam search's vocabulary-wide step in C (model/kernels/candidates.c), through ctypes.

A decoding step ends with a pass over every row's whole vocabulary: normalise it (log_softmax) and keep
its k best tokens. In torch that is a log_softmax that writes the whole (rows x V) block and a top-k
that reads it back, ~12-15% of a CPU decoding step of the shipped model at one thread. The C kernel
reads each row twice while it is in cache (its maximum and k best logits, then the sum of exponentials)
and writes only the k results: the same candidates, log-probabilities within float rounding.

The source ships with the package and is compiled once per machine, on first use, into a cache
directory (~/.cache/nmt-batch, or $NMT_KERNEL_CACHE): a C compiler (cc) is all it needs. Without one,
or with NMT_CPU_KERNELS=0, `candidates` returns None and the search runs its torch code.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile

import torch

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels", "candidates.c")
log = logging.getLogger(__name__)


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _compile_flags() -> list[str]:
    """AVX2/FMA code where this CPU has them (the kernel's vector paths), portable C elsewhere."""
    isa = ["-mavx2", "-mfma"] if {"avx2", "fma"} <= _cpu_flags() else []
    return ["-O3", "-shared", "-fPIC", "-fno-math-errno", *isa]


def _cache_dir() -> str:
    return os.environ.get("NMT_KERNEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "nmt-batch")


@functools.cache
def _library():
    """The compiled kernel, or None (no compiler, a failed build, or NMT_CPU_KERNELS=0)."""
    if os.environ.get("NMT_CPU_KERNELS", "1") == "0":
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        log.warning("no C compiler found: the CPU beam search keeps torch's log_softmax and top-k")
        return None
    flags = _compile_flags()
    with open(SOURCE, "rb") as f:
        key = hashlib.sha256(f.read() + " ".join([compiler, *flags]).encode()).hexdigest()[:16]
    path = os.path.join(_cache_dir(), f"candidates-{key}.so")
    try:
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            # Built under a temporary name and renamed: actors that start together never load half a file.
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(path))
            os.close(fd)
            try:
                subprocess.run([compiler, *flags, "-o", tmp, SOURCE, "-lm"], check=True, capture_output=True)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        lib = ctypes.CDLL(path)
    except (OSError, subprocess.CalledProcessError) as e:
        log.warning("the CPU beam-search kernel did not build (%s): torch's log_softmax and top-k are used", e)
        return None
    fn = lib.row_candidates
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
                   ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    return fn


def available() -> bool:
    return _library() is not None


def candidates(logits: torch.Tensor, k: int, banned: list[int], eos: int):
    """Each row's k best tokens after normalising logits (N, V) over the whole row, banned columns left
    out: (log-probs (N, k) best first, token ids (N, k), the EOS log-prob (N,)); None where the kernel
    does not apply (not on CPU, fewer than k allowed tokens, or no kernel), and the caller computes them
    with torch.

    The kernel runs on the calling thread. torch's log_softmax and top-k split the rows across its
    threads, and were still 2-3x slower at 2 threads than the kernel at one (160-860 rows x 8k).
    """
    N, V = logits.shape
    if logits.device.type != "cpu" or V - len(banned) < k or N == 0:
        return None
    fn = _library()
    if fn is None:
        return None
    x = logits.detach().float().contiguous()
    values = torch.empty(N, k)
    tokens = torch.empty(N, k, dtype=torch.int64)
    eos_lprob = torch.empty(N)
    ban = torch.tensor(banned, dtype=torch.int64)
    fn(x.data_ptr(), N, V, k, ban.data_ptr(), len(banned), eos, values.data_ptr(), tokens.data_ptr(),
       eos_lprob.data_ptr())
    return values, tokens, eos_lprob
