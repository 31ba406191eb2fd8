"""Peak memory of the current process, for the run statistics in reports and benchmarks.

Kept apart from the model code so that processes which never decode (the scoring
job's driver and actors) measure themselves without importing torch, which
alone adds ~200 MB of resident memory.
"""

from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
