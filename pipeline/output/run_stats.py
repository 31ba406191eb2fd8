"""Run statistics of the translation job: one type, one merge.

The model actor knows each row's cost (source and target tokens actually
decoded, its share of padding and of the call's time) and attaches it as one
struct column. The write stage sums a batch's rows into a `RunStats`, which
travels to the driver as a JSON cell and is merged there. Per-row values (not
per-call totals) keep the sums right however Ray Data re-blocks rows between
stages, and a retried task's output replaces the failed one's, so nothing is
counted twice.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field, fields

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.columns import MEMORY, ROW_STATS, STATUS

ROW_STATS_TYPE = pa.struct([
    ("source_tokens", pa.int64()),  # ids fed to the encoder (each piece's EOS included)
    ("target_tokens", pa.int64()),  # ids produced (each piece's EOS included)
    ("padded_source_tokens", pa.int64()),  # encoder positions including padding, over the row's pieces
    ("decode_seconds", pa.float64()),  # this row's share of its model-actor call
    ("actor_peak_rss_mb", pa.float64()),  # the actor's peak resident memory so far
    ("actor", pa.string()),  # which model actor decoded the row (host:pid): how the work spread
])


@dataclass
class RunStats:
    sentences: int = 0
    source_tokens: int = 0
    target_tokens: int = 0
    padded_source_tokens: int = 0
    # Summed over rows: the seconds model actors spent in their calls, which (unlike the run's
    # wall time) leaves out start-up, model loading and waiting for input.
    actor_decode_seconds: float = 0.0
    actor_peak_rss_mb: float = 0.0
    status: dict[str, int] = field(default_factory=dict)
    actor_rows: dict[str, int] = field(default_factory=dict)  # rows decoded by each model actor
    # How rows with something to translate got it (pipeline/memory/keys.py): decoded, memory, duplicate.
    reuse: dict[str, int] = field(default_factory=dict)

    def merge(self, other: RunStats) -> RunStats:
        return RunStats(
            sentences=self.sentences + other.sentences,
            source_tokens=self.source_tokens + other.source_tokens,
            target_tokens=self.target_tokens + other.target_tokens,
            padded_source_tokens=self.padded_source_tokens + other.padded_source_tokens,
            actor_decode_seconds=self.actor_decode_seconds + other.actor_decode_seconds,
            actor_peak_rss_mb=max(self.actor_peak_rss_mb, other.actor_peak_rss_mb),
            status=dict(Counter(self.status) + Counter(other.status)),
            actor_rows=dict(Counter(self.actor_rows) + Counter(other.actor_rows)),
            reuse=dict(Counter(self.reuse) + Counter(other.reuse)),
        )

    @classmethod
    def of_rows(cls, table: pa.Table) -> RunStats:
        """The statistics of translated rows (a table with the ROW_STATS and status columns)."""
        if not table.num_rows:
            return cls()
        rows = table.column(ROW_STATS)

        def total(name):
            return pc.sum(pc.struct_field(rows, name)).as_py() or 0

        counts = pc.value_counts(table.column(STATUS)).to_pylist()
        actors = pc.value_counts(pc.struct_field(rows, "actor")).to_pylist()
        reuse = (pc.value_counts(pc.struct_field(table.column(MEMORY), "reuse")).to_pylist()
                 if MEMORY in table.column_names else [])
        return cls(
            sentences=table.num_rows,
            source_tokens=int(total("source_tokens")),
            target_tokens=int(total("target_tokens")),
            padded_source_tokens=int(total("padded_source_tokens")),
            actor_decode_seconds=float(total("decode_seconds")),
            actor_peak_rss_mb=float(pc.max(pc.struct_field(rows, "actor_peak_rss_mb")).as_py() or 0.0),
            status={c["values"]: int(c["counts"]) for c in counts},
            actor_rows={c["values"]: int(c["counts"]) for c in actors if c["values"]},
            reuse={c["values"]: int(c["counts"]) for c in reuse if c["values"]},
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunStats:
        data = json.loads(text)
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    def summary(self, seconds: float) -> dict:
        """The report's `run` block: these totals and the rates derived from them."""
        decode = self.actor_decode_seconds
        return {
            "sentences": self.sentences,
            "source_tokens": self.source_tokens,
            "target_tokens": self.target_tokens,
            "padded_source_tokens": self.padded_source_tokens,
            "status": dict(sorted(self.status.items())),
            "seconds": round(seconds, 2),
            "sentences_per_second": round(self.sentences / seconds, 2) if seconds else 0.0,
            "target_tokens_per_second": round(self.target_tokens / seconds, 2) if seconds else 0.0,
            "padding_efficiency": round(self.source_tokens / self.padded_source_tokens, 4)
            if self.padded_source_tokens else 1.0,
            "actor_peak_rss_mb": round(self.actor_peak_rss_mb, 1),
            "actor_decode_seconds": round(decode, 4),  # small runs decode in milliseconds
            # What one model actor sustains once running: the figure to size a pool with.
            "sentences_per_actor_second": round(self.sentences / decode, 2) if decode else 0.0,
            "target_tokens_per_actor_second": round(self.target_tokens / decode, 2) if decode else 0.0,
            # Rows per model actor, largest first: an even spread means no actor held up the run.
            "actor_rows": sorted(self.actor_rows.values(), reverse=True),
            # Rows whose segment an identical one of this run had decoded (pipeline/memory/board.py).
            "duplicate_segments": self.reuse.get("duplicate", 0),
        }


def row_stats_array(source_tokens, target_tokens, padded, decode_seconds, peak_rss_mb,
                    actor: str = "") -> pa.StructArray:
    """The ROW_STATS column from per-row lists (decode_seconds, peak_rss_mb and actor may be scalars)."""
    n = len(source_tokens)

    def per_row(x):
        return x if isinstance(x, (list, tuple)) or hasattr(x, "__len__") else [x] * n

    return pa.StructArray.from_arrays(
        [pa.array(source_tokens, pa.int64()), pa.array(target_tokens, pa.int64()), pa.array(padded, pa.int64()),
         pa.array(per_row(decode_seconds), pa.float64()), pa.array(per_row(peak_rss_mb), pa.float64()),
         pa.array([actor] * n, pa.string())],
        fields=list(ROW_STATS_TYPE),
    )


