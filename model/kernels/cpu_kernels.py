"""The CPU decoding step's C kernels (model/kernels/*.c), through ctypes.

Three kernels: the beam search's vocabulary-wide step (`candidates`, candidates.c); a decoder
self-attention that reads its cache in place through each row's ancestry (`step_attention`,
attention.c; model/architectures/decoder_cache.py's StepCache); and a cross-attention that reads each sentence's
encoder keys/values in place, for all of its beams (`cross_attention`, attention.c;
model/architectures/cross_memory.py's RowMemory).

A decoding step ends with a pass over every row's whole vocabulary: normalise it (log_softmax) and keep
its k best tokens. In torch that is a log_softmax that writes the whole (rows x V) block and a top-k
that reads it back, ~12-15% of a CPU decoding step of the shipped model at one thread. The C kernel
reads each row twice while it is in cache (its maximum and k best logits, then the sum of exponentials)
and writes only the k results: the same candidates, log-probabilities within float rounding.

The sources ship with the package and are compiled once per machine, on first use, into one library
in a cache directory (~/.cache/nmt-batch, or $NMT_KERNEL_CACHE): a C compiler (cc) is all it needs.
Without one, or with NMT_CPU_KERNELS=0, `available()` is False, `candidates` returns None, and the
search and the Transformer run their torch code.
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

from model.kernels.cpu_features import cpu_flags

KERNELS = os.path.dirname(os.path.abspath(__file__))  # the C sources sit next to this module
SOURCES = [os.path.join(KERNELS, name) for name in ("candidates.c", "attention.c")]
log = logging.getLogger(__name__)


def _compile_flags(openmp: bool = True) -> list[str]:
    """AVX2/FMA code where this CPU has them (the kernels' vector paths), portable C elsewhere; OpenMP
    (the rows split across torch's threads: the same libgomp, which torch has loaded) where the compiler
    has it."""
    isa = ["-mavx2", "-mfma"] if {"avx2", "fma"} <= cpu_flags() else []
    return ["-O3", "-shared", "-fPIC", "-fno-math-errno", *(["-fopenmp"] if openmp else []), *isa]


def _build(compiler: str, flags: list[str], path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # Built under a temporary name and renamed: actors that start together never load half a file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(path))
    os.close(fd)
    try:
        subprocess.run([compiler, *flags, "-o", tmp, *SOURCES, "-lm"], check=True, capture_output=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _cache_dir() -> str:
    return os.environ.get("NMT_KERNEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "nmt-batch")


@functools.cache
def _library():
    """The compiled kernels, or None (no compiler, a failed build, or NMT_CPU_KERNELS=0)."""
    if os.environ.get("NMT_CPU_KERNELS", "1") == "0":
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        log.warning("no C compiler found: CPU decoding keeps torch's log_softmax, top-k and attention")
        return None
    lib = None
    for flags in (_compile_flags(), _compile_flags(openmp=False)):  # a compiler without OpenMP: one thread
        digest = hashlib.sha256(" ".join([compiler, *flags]).encode())
        for source in SOURCES:
            with open(source, "rb") as f:
                digest.update(f.read())
        path = os.path.join(_cache_dir(), f"kernels-{digest.hexdigest()[:16]}.so")
        try:
            if not os.path.exists(path):
                _build(compiler, flags, path)
            lib = ctypes.CDLL(path)
            break
        except (OSError, subprocess.CalledProcessError) as e:
            error = e
    if lib is None:
        log.warning("the CPU decoding kernels did not build (%s): torch's code is used", error)
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.row_candidates.restype = ctypes.c_int
    lib.row_candidates.argtypes = [ptr, i64, i64, i64, ptr, i64, ptr, i64, i64, ptr, ptr, ptr, ctypes.c_int]
    lib.step_attention.restype = ctypes.c_int
    lib.step_attention.argtypes = [ptr, i64, ptr, ptr, i64, i64, ptr, i64, i64, i64, i64, ctypes.c_float, ptr,
                                   ctypes.c_int]
    lib.cross_attention.restype = ctypes.c_int
    lib.cross_attention.argtypes = [ptr, i64, ptr, ptr, i64, ptr, ptr, i64, i64, i64, i64, ctypes.c_float, ptr,
                                    ctypes.c_int]
    return lib


def available() -> bool:
    return _library() is not None


def apply_to(t: torch.Tensor) -> bool:
    """Whether the kernels compute with t's device and dtype (CPU, fp32) here."""
    return t.device.type == "cpu" and t.dtype == torch.float32 and available()


def candidates(logits: torch.Tensor, k: int, banned: list[int], eos: int, row_bans: torch.Tensor | None = None):
    """Each row's k best tokens after normalising logits (N, V) over the whole row, banned columns left
    out: (log-probs (N, k) best first, token ids (N, k), the EOS log-prob (N,)); None where the kernel
    does not apply (not on CPU, fewer than k allowed tokens, or no kernel), and the caller computes them
    with torch.

    row_bans (N, V) bool, True where a row's token is banned too (the no-repeat guard; any row stride,
    unit column stride). A row left with fewer than k allowed tokens gets -inf for the rest, as torch's
    top-k over -inf values does (their ids are never read: a -inf candidate ends or continues nothing).

    The kernel splits the rows across torch's threads. torch's log_softmax and top-k, split the same way,
    were 2-3x slower at 2 threads than the kernel at one (160-860 rows x 8k).
    """
    N, V = logits.shape
    if logits.device.type != "cpu" or V - len(banned) < k or N == 0:
        return None
    lib = _library()
    if lib is None:
        return None
    x = logits.detach().float().contiguous()
    values = torch.empty(N, k)
    tokens = torch.empty(N, k, dtype=torch.int64)
    eos_lprob = torch.empty(N)
    ban = torch.tensor(banned, dtype=torch.int64)
    if row_bans is not None and (row_bans.shape != (N, V) or row_bans.dtype != torch.bool or row_bans.stride(1) != 1):
        raise ValueError(f"candidates: row bans {tuple(row_bans.shape)} {row_bans.dtype} for logits {(N, V)}")
    rows_ptr, rows_stride = (None, 0) if row_bans is None else (row_bans.data_ptr(), row_bans.stride(0))
    lib.row_candidates(x.data_ptr(), N, V, k, ban.data_ptr(), len(banned), rows_ptr, rows_stride, eos,
                       values.data_ptr(), tokens.data_ptr(), eos_lprob.data_ptr(), torch.get_num_threads())
    return values, tokens, eos_lprob


def step_attention(q: torch.Tensor, k_steps: torch.Tensor, v_steps: torch.Tensor, k_stride: int, v_stride: int,
                   ancestry: torch.Tensor, heads: int) -> torch.Tensor:
    """One decoding step's self-attention, read in place (model/kernels/attention.c): q (N, H*d) fp32 rows
    (any row stride, unit column stride); k_steps, v_steps (T,) int64 addresses of each step's keys and
    values (rows k_stride and v_stride floats apart); ancestry (N, T) int32, the row at each step that row
    n descends from. Returns (N, H*d): per head, softmax(q.k / sqrt(d)) over the T positions, times v.
    Callers check `available()` first."""
    N, D = q.shape
    T = ancestry.size(1)
    # The kernel trusts these: a row without its ancestry would read past the arrays.
    if ancestry.size(0) != N or not (q.stride(1) == 1 and ancestry.dtype == torch.int32 and ancestry.is_contiguous()):
        raise ValueError(f"step_attention: {N} query rows, ancestry {tuple(ancestry.shape)} {ancestry.dtype}")
    if k_steps.numel() != T or v_steps.numel() != T:
        raise ValueError(f"step_attention: {T} positions, {k_steps.numel()} and {v_steps.numel()} addresses")
    out = torch.empty(N, D)
    d = D // heads
    if _library().step_attention(q.data_ptr(), q.stride(0), k_steps.data_ptr(), v_steps.data_ptr(), k_stride,
                                 v_stride, ancestry.data_ptr(), N, T, heads, d, d ** -0.5, out.data_ptr(),
                                 torch.get_num_threads()):
        raise MemoryError("step_attention: no scratch space")
    return out



def cross_attention(q: torch.Tensor, kt: torch.Tensor, v: torch.Tensor, rows: torch.Tensor, lengths: torch.Tensor
                    ) -> torch.Tensor:
    """One decoding step's cross-attention (model/kernels/attention.c): q (G*P, H*d) fp32 query rows (any row
    stride, unit column stride) in G groups of P adjacent rows (a sentence's beams); kt (B, H, d, S) and
    v (B, H, S, d) contiguous, each sentence's encoder keys (transposed) and values; rows (G,) int32, the
    sentence of each group; lengths (B,) int32, each sentence's real positions (its first lengths[b]; the
    rest are padding). Returns (G*P, H*d): per head, softmax(q.k / sqrt(d)) over the sentence's
    positions, times v. Callers check `available()` first.

    The shapes are checked here; the index values are not (at every layer of every step that would cost
    more than the check is worth): model/architectures/cross_memory.py's RowMemory makes lengths within 1 .. S and
    takes rows from index_select, which refuses rows out of range."""
    N, D = q.shape
    B, H, d, S = kt.shape
    G = rows.numel()
    # The kernel trusts these: a mismatched shape would read out of bounds.
    if not (q.stride(1) == 1 and H * d == D and v.shape == (B, H, S, d) and kt.is_contiguous() and v.is_contiguous()
            and G and N % G == 0):
        raise ValueError(f"cross_attention: queries {tuple(q.shape)}, keys {tuple(kt.shape)}, values {tuple(v.shape)}, "
                         f"{G} groups")
    if not (rows.dtype == lengths.dtype == torch.int32 and lengths.shape == (B,) and rows.is_contiguous()
            and lengths.is_contiguous()):
        raise ValueError(f"cross_attention: rows {tuple(rows.shape)} {rows.dtype}, lengths {tuple(lengths.shape)}")
    out = torch.empty(N, D)
    if _library().cross_attention(q.data_ptr(), q.stride(0), kt.data_ptr(), v.data_ptr(), S, rows.data_ptr(),
                                  lengths.data_ptr(), G, N // G, H, d, d ** -0.5, out.data_ptr(),
                                  torch.get_num_threads()):
        raise MemoryError("cross_attention: no scratch space")
    return out
