"""pipeline.runtime.malloc: large blocks freed by one decoding step are reused by the next, not mapped anew.

The test reads the mechanism first (mallinfo2: is a large block mmap'd, or on the heap that keeps
it after free), then the benefit (minor page faults over a run of growing blocks, as decoding
batches grow). The fault counts are compared with each other, never with a fixed number: how many
faults a fresh mapping costs depends on the kernel (transparent huge pages, fault-around), and a CI
run once counted 45k faults where this VM counts 200k for the same probe.
"""

import platform
import subprocess
import sys

import pytest

# Prints three numbers: the minor page faults of 50 blocks of 8 to 28 MB, larger each time (glibc
# raises its mmap threshold to the largest block freed so far, so a repeated size alone would not
# show the default's cost); then, for one 30 MB block, the MB mmap'd for it while it lives and the
# MB of it the heap still holds after it is freed.
PROBE = """
import ctypes, resource, sys
import torch

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "reuse":
    from pipeline.runtime.malloc import reuse_freed_memory
    assert reuse_freed_memory()
MB = 1 << 20
torch.ones(1000).sum()  # first touch of the allocator and thread pool, outside the counts
faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(50):
    torch.ones(2_000_000 + 100_000 * i).sum()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
mapped_before = libc.mallinfo2().hblkhd
block = torch.ones(30 * MB // 4)  # 30 MB: above every block freed so far, below glibc's 32 MB cap
mapped_alive = (libc.mallinfo2().hblkhd - mapped_before) / MB
heap_alive = libc.mallinfo2().arena
del block
heap_kept = (libc.mallinfo2().arena - (heap_alive - 30 * MB)) / MB
print(faults, mapped_alive, heap_kept)
"""


def _probes(*modes):
    """(faults, MB mapped while alive, MB the heap kept) per mode, each from a fresh process; the processes
    run at once (each counts its own faults and reads its own allocator)."""
    procs = [subprocess.Popen([sys.executable, "-c", PROBE, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for mode in modes]
    results = []
    for proc in procs:
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        results.append(tuple(float(x) for x in out.split()[-3:]))
    return results


def _glibc_with_mallinfo2():
    name, version = platform.libc_ver()
    return platform.system() == "Linux" and name == "glibc" and tuple(map(int, version.split(".")[:2])) >= (2, 33)


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="mallinfo2 needs glibc 2.33+")
def test_reuse_freed_memory_keeps_large_blocks_on_the_heap_for_the_next_step():
    default, reuse = _probes("default", "reuse")
    # glibc's defaults: a 30 MB block gets a mapping of its own, unmapped again on free.
    default_faults, mapped_alive, _ = default
    assert mapped_alive >= 30

    # The actors' settings: the block comes from the heap, and the heap keeps it when it is freed.
    reused_faults, mapped_alive, heap_kept = reuse
    assert mapped_alive < 1
    assert heap_kept >= 30
    # So growing blocks are served from kept pages instead of fresh ones (200k -> 9-14k faults on
    # the development VM; a factor of 2 leaves room for kernels that fault fresh pages cheaply).
    assert reused_faults < default_faults / 2
