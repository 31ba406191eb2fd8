"""What a model actor reuses instead of decoding: entries of the translation memory, identical segments in its
call, and segments of this run another actor decoded (the board, pipeline/memory/board.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.memory.keys import REUSE_DECODED, REUSE_DUPLICATE, REUSE_MEMORY


@dataclass(frozen=True)
class ReuseSpec:
    """What the driver gives each model actor: the run's fingerprint, the memory, the board's name."""

    fingerprint: str
    memory_uri: str = ""  # "" : no memory
    storage_options: dict | None = None
    board: str = ""  # the SegmentBoard actor's name ("" : deduplicate within each call only)
    namespace: str = ""  # ... and the driver's Ray namespace, where it is named


class Reuse:
    """Per model actor: the memory (opened once) and the run's board."""

    def __init__(self, spec: ReuseSpec, board=None):
        """`board`: a SegmentBoard object to use in this process (tests); else the actor `spec.board` names."""
        self.spec = spec
        self.memory = None
        if spec.memory_uri:
            from pipeline.memory.store import TranslationMemory

            self.memory = TranslationMemory(spec.memory_uri, spec.storage_options)
        self.board = board
        if board is None and spec.board:
            import ray

            self.board = ray.get_actor(spec.board, namespace=spec.namespace or None)

    def _board(self, method: str, *args):
        """A call to the board, or None once it failed: the run goes on without deduplication across calls."""
        if self.board is None:
            return None
        call = getattr(self.board, method)
        if not hasattr(call, "remote"):
            return call(*args)
        import ray

        try:
            return ray.get(call.remote(*args), timeout=120)
        except Exception as e:  # noqa: BLE001  (the board only saves work)
            print(f"warning: segment board unavailable ({type(e).__name__}: {e}); decoding every segment of this "
                  "actor's calls", file=sys.stderr, flush=True)
            self.board = None
            return None

    def resolve(self, keys: list[str | None], decode: Callable[[list[int]], dict[int, dict]]
                ) -> tuple[dict[int, dict], list[str | None]]:
        """Each row's outcome and how it was had (decoded, memory, duplicate; None for rows without a key).

        `decode(rows)` decodes those rows and returns row -> outcome; it is called with one row per distinct
        key that nothing else provides, at most twice (claimed keys, then pending ones still missing).
        """
        first: dict[str, int] = {}
        for r, k in enumerate(keys):
            if k is not None:
                first.setdefault(k, r)
        by_key: dict[str, tuple[dict, str]] = {}
        if self.memory is not None:
            try:
                hits = self.memory.lookup(list(first))
            except Exception as e:  # noqa: BLE001  (the memory only saves work: never fail a run for it)
                print(f"warning: translation memory {self.spec.memory_uri} unreadable ({type(e).__name__}: {e}); this "
                      "actor decodes without it", file=sys.stderr, flush=True)
                self.memory, hits = None, {}
            for k, outcome in hits.items():
                by_key[k] = (outcome, REUSE_MEMORY)
        rest = [k for k in first if k not in by_key]
        answer = self._board("acquire", rest)
        found, mine, pending = answer if answer is not None else ({}, rest, [])
        by_key.update((k, (outcome, REUSE_DUPLICATE)) for k, outcome in found.items())
        decoded = self._decode(mine, first, decode, by_key)
        if pending:
            later = self._board("lookup", pending) or {}
            by_key.update((k, (outcome, REUSE_DUPLICATE)) for k, outcome in later.items())
            decoded.update(self._decode([k for k in pending if k not in later], first, decode, by_key))
        if decoded:
            self._board("publish", decoded)
        outcomes, labels = {}, []
        for r, k in enumerate(keys):
            if k is None:
                labels.append(None)
                continue
            outcome, how = by_key[k]
            outcomes[r] = outcome
            # Other rows of a key this call decoded copy it: only the first row decoded it.
            labels.append(REUSE_DUPLICATE if how == REUSE_DECODED and first[k] != r else how)
        return outcomes, labels

    @staticmethod
    def _decode(keys: list[str], first: dict[str, int], decode, by_key: dict) -> dict[str, dict]:
        if not keys:
            return {}
        rows = decode([first[k] for k in keys])
        out = {k: rows[first[k]] for k in keys}
        by_key.update((k, (outcome, REUSE_DECODED)) for k, outcome in out.items())
        return out
