"""Keep a translation memory (jobs/translate_corpus.py --memory) in check: drop entries no run has used for N
days, merge the small files each shard commit adds, bring the key index up to date and delete old versions.

    python jobs/compact_memory.py --memory s3://bucket/tm/en-de --unused-days 90

Safe beside running jobs: Lance commits the deletion and the merged files as new versions, and a run that
opened the memory before keeps reading its own version (files of versions newer than --keep-versions-hours
stay). Prints and returns what it did as JSON.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script

from jobs.cli import parse_config, print_config  # noqa: E402
from model.config_fields import arg  # noqa: E402


@dataclass(frozen=True)
class CompactConfig:
    """Drop unused entries of a translation memory and compact it."""

    memory: str = arg(help="the translation memory (a Lance dataset at any URI), as given to --memory")
    unused_days: float = arg(0.0, help="drop entries no run has written or reused for this many days (0: drop "
                             "nothing, only compact)")
    keep_versions_hours: float = arg(24.0, help="keep the files of versions younger than this, for runs that "
                                     "opened the memory before")
    storage_options: dict = arg({}, help="JSON options for fsspec (e.g. endpoint_url); never logged")

    def __post_init__(self):
        if self.unused_days < 0 or self.keep_versions_hours < 0:
            raise ValueError("--unused-days and --keep-versions-hours must be >= 0")


def main(argv=None) -> int:
    cfg = parse_config(CompactConfig, argv)
    print_config(cfg)
    from pipeline.memory import TranslationMemory

    memory = TranslationMemory(cfg.memory, cfg.storage_options)
    if not memory.exists():
        print(f"error: no translation memory at {cfg.memory}", file=sys.stderr)
        return 2
    result = memory.compact(cfg.unused_days or None, cfg.keep_versions_hours)
    print(json.dumps({"memory": cfg.memory, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
