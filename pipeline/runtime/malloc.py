"""glibc malloc settings for processes that decode on CPU.

Beam search allocates a few tensors of rows x vocabulary at every step (the logits alone are ~10 MB
for 300 rows of an 8k vocabulary). glibc serves blocks that large with fresh mmap'd pages and
unmaps them again on free, so every step page-faults and zero-fills them anew: ~860k minor faults
for the shipped model on test_2016_flickr at beam 4, several percent of the decoding time.
CTranslate2 keeps a caching allocator for this reason; PyTorch caches on GPUs only.

Raising glibc's mmap threshold to its maximum (32 MB) puts those blocks on the heap, and a high
trim threshold keeps freed heap memory for the next step instead of returning it at once: the
faults fall tenfold. The price is that the process keeps up to `TRIM_THRESHOLD` of freed memory
at the top of its heap after a large batch; a translation actor's memory is bounded by its token
budget anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 512 * 1024 * 1024
TOP_PAD = 64 * 1024 * 1024  # grow the heap in large steps: fewer brk calls


def reuse_freed_memory() -> bool:
    """Make glibc keep large freed blocks for reuse; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # musl, macOS: no mallopt, and their own policies
        return False
    return all(mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD)))
