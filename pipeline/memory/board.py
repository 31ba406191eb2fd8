"""The run's segment board: one Ray actor that knows which distinct segments the model actors of this run have
decoded or are decoding, so that each is decoded once however many rows hold it.

A model actor asks for the segments of its call before decoding (`acquire`): segments decoded already come
back with their outcome; new ones are claimed by the caller; segments another actor claimed but has not
published are `pending`. The caller decodes what it claimed, publishes it, asks once more for the pending
ones and decodes itself whatever is still missing. Nobody ever waits on another actor, so a claimer that
dies (its node lost) costs a second decode of its segments, never a hang; and a board that is lost costs
the deduplication, never a translation (`pipeline/memory/reuse.py` decodes everything then).
"""

from __future__ import annotations

import os

# The board holds every distinct segment's outcome (a few hundred bytes each): past this many it keeps
# claiming but stops storing, and later copies of new segments are decoded again.
MAX_ENTRIES = int(os.environ.get("NMT_BOARD_MAX_ENTRIES", 4_000_000))


class SegmentBoard:
    """Ray actor (also a plain object in tests)."""

    def __init__(self, max_entries: int = MAX_ENTRIES):
        self.done: dict[str, dict] = {}  # key -> outcome (hyp_ids, score, nbest_scores, length_limited)
        self.claimed: set[str] = set()
        self.max_entries = max_entries

    def acquire(self, keys: list[str]) -> tuple[dict[str, dict], list[str], list[str]]:
        """(outcomes of keys decoded already, keys now claimed by the caller, keys claimed by another)."""
        found, mine, pending = {}, [], []
        for k in keys:
            if k in self.done:
                found[k] = self.done[k]
            elif k in self.claimed:
                pending.append(k)
            else:
                self.claimed.add(k)
                mine.append(k)
        return found, mine, pending

    def publish(self, outcomes: dict[str, dict]) -> None:
        for k, outcome in outcomes.items():
            self.claimed.discard(k)
            if len(self.done) < self.max_entries:
                self.done[k] = outcome

    def lookup(self, keys: list[str]) -> dict[str, dict]:
        return {k: self.done[k] for k in keys if k in self.done}

    def size(self) -> int:
        return len(self.done)


def start_board(name: str):
    """The board of this run, as a named actor on the driver's node (a head without CPUs included: it takes
    none), restarted empty if its process dies."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    actor = ray.remote(SegmentBoard).options(
        name=name, num_cpus=0, max_restarts=-1, max_concurrency=1,
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True))
    return actor.remote()
