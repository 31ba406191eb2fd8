"""pipeline.malloc: large blocks freed by one decoding step are reused by the next, not faulted in again."""

import platform
import subprocess
import sys

import pytest

# Allocates, writes and frees blocks of 8 to 28 MB, larger each time as decoding batches can be (glibc
# raises its mmap threshold to the largest block freed so far, so a repeated size alone would not show
# it); prints the minor page faults that took.
PROBE = """
import resource, sys
import torch
if sys.argv[1] == "reuse":
    from pipeline.malloc import reuse_freed_memory
    assert reuse_freed_memory()
torch.ones(3_000_000).sum()  # first touch, outside the count
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(50):
    torch.ones(2_000_000 + 100_000 * i).sum()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_reuse_freed_memory_stops_the_page_faults_of_large_blocks():
    def faults(mode):
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.split()[-1])

    default, reused = faults("default"), faults("reuse")
    assert default > 50 * 1000  # 2,000-7,000 pages per block, faulted in anew each time
    assert reused < default / 10
