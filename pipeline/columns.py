"""Every column the translation job adds to a row, at some stage or in its output: one home for their names.

Internal columns (leading "__") travel between stages and never reach the output; the output columns are
`output_fields`'. Input columns named like any of them are refused or renamed (pipeline/inputs/schema.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa

STATUS = "status"  # the row's status: a RowStatus


class RowStatus(StrEnum):
    """A row's status, in the `status` column of the output. Tokenize sets every status but length_limit,
    which the model actor sets once it has decoded the row; a document's is its segments' (documents/units.py)."""

    OK = "ok"  # translated whole
    EMPTY = "empty"  # null, empty or whitespace-only source: empty translation
    SPLIT = "split"  # longer than --max-source-tokens: translated in pieces, joined with a space
    TRUNCATED = "truncated"  # longer than --max-source-tokens with --long-policy truncate: only the head translated
    # The translation (of a piece, for split rows) reached the maximum length without ending: it was cut there
    # and is kept. Mostly loops ("Zwei 8 8 8 8 ...", issue 31); it wins over split and truncated, since only
    # this status shows it.
    LENGTH_LIMIT = "length_limit"
    UNSUPPORTED_LANGUAGE = "unsupported_language"  # the model has no token for the row's language: empty translation
    INVALID_UTF8 = "invalid_utf8"  # a binary source whose bytes are not UTF-8: nothing translated, translation null
    # --format html|markdown: a document the reader refused (over its size limit, or the reader failed on it):
    # nothing translated, the translation is the document unchanged.
    UNPARSABLE = "unparsable"
    # --source-lang auto (pipeline/languages/): no language given and none identified (too short, too unsure)
    UNKNOWN_LANGUAGE = "unknown_language"
    SAME_LANGUAGE = "same_language"  # identified in the target language: its source is its translation, not decoded


DETECTED = "detected_lang"  # --source-lang auto: the language identified from the source (null: not called)
FLAGS = "flags"  # --quality-flags: list of the row's quality flags (pipeline/languages/flags.py)
PIECES = "__pieces"  # list<list<int32>>: source ids per piece, each ending in EOS
HYP_IDS = "__hyp_ids"  # list<list<int32>>: n-best target ids
TARGET_PREFIX = "__target_prefix"  # list<int32>: tokens forced after the decoder's start (target language)
ROW_STATS = "__row_stats"  # the per-row struct column the model actor adds
ROUTE = "__route"  # int32, --model-for: the model route of the row (pipeline/languages/routing.py; 0: --model)
# --format html|markdown: segments whose inline markup is placed by alignment (tags.py). MARKED (bool) flags
# them, from the split stage; the model actor adds ATTENTION (list<float32>, its chosen translation's
# cross-attention, target pieces x source pieces without EOS, row-major; null: none) and the detokenize stage
# turns it into ALIGN (list<int32>: per word of the translation, the source word it attends to most; null:
# no alignment), which stays in part files for the assembly.
MARKED, ATTENTION, ALIGN = "__marked", "__attention", "__align"
INTERNAL = (PIECES, HYP_IDS, TARGET_PREFIX, ROW_STATS, ROUTE, MARKED, ATTENTION)
# The model actor's record of how each row's translation was had and what it was (pipeline/memory/keys.py
# MEMORY_TYPE); unlike INTERNAL columns it stays in part files, for the shard's commit to write the memory.
MEMORY = "__memory"
SEG, NSEG = "__seg", "__nseg"  # a segment's index in its document, and the document's segment count
PATH = "path"  # the column Ray's read_parquet(include_paths=True) adds
STATS_COLUMN = "run_stats"  # the write stage's output: one JSON RunStats per part file written
SHARD_COLUMN = "shard"  # the write stage's output, beside STATS_COLUMN: the part file's shard
ROWS_DONE_COLUMN = "rows_done"  # ... and how many of its input rows the part finishes ("n" or "n/d")


@dataclass(frozen=True)
class StageColumns:
    """What a stage needs in its input and what it changes (as Ray's batch stages declare their keys): each
    stage checks its input against `reads`, and the plan checks the chain once before anything runs."""

    stage: str
    reads: tuple[str, ...]
    writes: tuple[str, ...] = ()
    drops: tuple[str, ...] = ()

    def check(self, table: pa.Table) -> None:
        require_columns(table, self.stage, self.reads)


def check_stage_chain(input_columns, stages: list[StageColumns]) -> None:
    """Every column a stage reads is in the input or written by a stage before it (and not dropped since)."""
    have = set(input_columns)
    for st in stages:
        missing = [c for c in st.reads if c not in have]
        if missing:
            raise ValueError(f"pipeline plan: the {st.stage} stage reads {missing}, which neither the input nor an "
                             f"earlier stage provides (there: {sorted(have)})")
        have = (have | set(st.writes)) - set(st.drops)


def require_columns(table: pa.Table, stage: str, columns) -> None:
    for col in columns:
        if col not in table.column_names:
            raise KeyError(f"{stage} stage: input has no column {col!r} (columns: {table.column_names})")


def output_fields(nbest: int, write_scores: bool, write_segments: bool = False, detect: bool = False,
                  flags: bool = False) -> list[pa.Field]:
    """Columns the translation job adds to the input's."""
    fields = [pa.field("translation", pa.string()), pa.field(STATUS, pa.string())]
    if detect:
        fields.append(pa.field(DETECTED, pa.string()))
    if flags:
        fields.append(pa.field(FLAGS, pa.list_(pa.string())))
    if write_scores or nbest > 1:
        fields.append(pa.field("score", pa.float64()))
    if nbest > 1:
        fields += [pa.field("nbest_scores", pa.list_(pa.float64())), pa.field("nbest", pa.list_(pa.string()))]
    if write_segments:
        fields += [pa.field("source_segments", pa.list_(pa.string())),
                   pa.field("target_segments", pa.list_(pa.string()))]
    return fields


def reserved_columns() -> frozenset[str]:
    """Every column the job adds to an input row at some stage: Ray's `path`, the stages' internal columns and
    the output columns with every option on (the model actors add `score` and `nbest_scores` to every row)."""
    every = output_fields(nbest=2, write_scores=True, write_segments=True, detect=True, flags=True)
    return frozenset([PATH, SEG, NSEG, MEMORY, ALIGN, *INTERNAL, *(f.name for f in every)])
