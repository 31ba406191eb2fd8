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


def private_mb() -> float:
    """Resident memory private to this process now (Linux RssAnon), in MB.

    Peak RSS also counts the pages of Ray's shared-memory object store that the process has
    read: a Ray Data worker reading blocks zero-copy keeps touching new store pages as the
    data streams by, so its RSS climbs with the rows processed even when nothing it owns
    grows. The private figure is the one that shows whether a worker's own memory is bounded.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()
