"""The output layout, and the claim a run makes on an output (its settings' fingerprint).

Output layout under --output:
    translations/<shard>   one Parquet file per input shard, same relative name, rows in input order
    _parts/<shard>/        part files written while translating (removed once the shard is committed), and
                           kept.parquet: rows of a committed output whose input changed since (output/resume.py)
    _stats/<shard>.json    the committed shard's statistics (row counts, metric sufficient statistics) and
                           the version of the input file it was made from
    _lease.json            the lease of the run writing the output (pipeline/output/lease.py)
    report.json, report.md

Every file is written under a temporary name and moved into place, so a file
that exists is complete. A shard is done when its translation file and its
stats exist and the stats record the very input version the shard has now
(pipeline/inputs/changes.py: size and ETag or mtime from the listing, and the
row count); a committed shard whose input changed is brought in line with it
(pipeline/output/resume.py: kept rows carried over, added and edited rows translated,
removed rows dropped). A shard with part files is partly done: the ids in its parts are
not translated again. Rows are keyed by id, so ids must be unique across the
input (checked before any decoding, and again when a shard is committed).
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass

from pipeline.inputs import (
    KEPT_FILE,
    Shard,
)
from pipeline.io import (
    InputError,
    write_bytes_atomic,
)


@dataclass(frozen=True)
class OutputLayout:
    root: str  # output path on the output filesystem

    def translation(self, shard: str) -> str:
        return f"{self.root}/translations/{shard}"

    def parts(self, shard: str) -> str:
        return f"{self.root}/_parts/{shard}"

    def stats(self, shard: str) -> str:
        return f"{self.root}/_stats/{shard}.json"

    @property
    def run_file(self) -> str:
        return f"{self.root}/_run.json"


# Fingerprint entries that earlier versions did not record. An output they started resumes on what they did
# record, and gets the entry recorded then, so that later runs check it:
# - a setting that did not exist then resumes when the run keeps the value the search behaved as then;
# - "model_files" (config, vocabularies and every weight shard, hashed) resumes whatever it is: earlier
#   versions hashed the weights file alone, or a sharded model's index, as "model_weights", still checked.
ANY_VALUE = object()


ADDED_LATER = {"no_repeat_ngram_size": 0, "model_files": ANY_VALUE, "format": "text", "lang_confidence": 0.3,
               "quality_flags": False}


_MISSING = object()


def claim_output(fs, layout: OutputLayout, fingerprint: dict) -> None:
    """Record what produces this output; refuse to resume into output made with other settings.

    Resuming mixes rows from several runs, so they must come from the same model, decoding
    settings and columns (hardware settings may differ).
    """
    if fs.exists(layout.run_file):
        previous = json.loads(fs.cat_file(layout.run_file))
        changed = sorted(k for k in set(previous) | set(fingerprint)
                         if not _same_setting(k, previous.get(k, _MISSING), fingerprint.get(k, _MISSING)))
        if changed:
            where = fs.unstrip_protocol(layout.root)
            raise InputError(f"{where} was produced with other settings ({', '.join(changed)}); "
                             "pass --overwrite or choose another --output")
        recorded_now = {k: v for k, v in fingerprint.items() if k not in previous}
        if recorded_now:
            write_bytes_atomic(fs, layout.run_file,
                               json.dumps({**previous, **recorded_now}, indent=2, sort_keys=True).encode())
        return
    write_bytes_atomic(fs, layout.run_file, json.dumps(fingerprint, indent=2, sort_keys=True).encode())


def _same_setting(key: str, previous, current) -> bool:
    """Whether a resumed run keeps a setting. Outputs started before `--precision auto` was recorded as
    given hold the precision it resolved to; a run asking "auto" again resumes them (what each row was
    decoded in is counted in the report either way)."""
    if key == "precision" and current == "auto" and previous in ("fp32", "bf16", "fp16", "int8"):
        return True
    if key in ADDED_LATER:
        then = ADDED_LATER[key]
        previous = then if previous is _MISSING else previous
        current = then if current is _MISSING else current
        if previous is ANY_VALUE or current is ANY_VALUE:
            return True
    return previous == current


def part_files(fs, parts_dir: str, kept: bool = False) -> list[str]:
    """A shard's part files (and its kept file), listed, not globbed: shard names may hold glob characters."""
    if not fs.exists(parts_dir):
        return []
    names = sorted(fs.find(parts_dir))
    return [p for p in names if (posixpath.basename(p).startswith("part-") and p.endswith(".parquet"))
            or (kept and posixpath.basename(p) == KEPT_FILE)]


DECODED_WITH = b"nmt_batch.decoded_with"  # part file metadata: the precision its rows were decoded in


def read_shard_stats(fs, layout: OutputLayout, shard: Shard) -> dict:
    return json.loads(fs.cat_file(layout.stats(shard.name)))
