"""Corpus scoring at scale: per-group sufficient statistics, streaming bootstrap, paired tests.

Each Ray Data batch becomes a few rows of partial sums, one per group (and one
per source-length bucket): the metric statistics of its sentences and, when
confidence intervals or a comparison are asked for, the same sums under B
bootstrap weightings. The driver adds these up as they stream in, so memory
depends on groups x B, never on the number of rows.

The bootstrap is the Poisson bootstrap (each sentence enters each replicate
Poisson(1) times): the streaming form of sacreBLEU's resampling with
replacement, which needs all sentences at once. Intervals and p-values are
computed from the replicates exactly as sacreBLEU does (`estimate_ci`, and the
paired bootstrap test of `--paired-bs`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipeline.runtime import peak_rss_mb, private_mb
from pipeline.scoring.metrics import (
    MetricOptions,
    make_metrics,
    score_from_stats,
    sentence_stats,
    signature,
    stats_width,
)

NULL_KEY = "<null>"
LENGTH_BUCKETS = (10, 20, 30, 40)  # words: 1-10, 11-20, 21-30, 31-40, 41+


@dataclass(frozen=True)
class ScoreSpec:
    """What to score; shared by the Ray stage and the driver."""

    hypothesis: str
    references: tuple[str, ...]  # several columns, or one list<string> column
    group_by: tuple[str, ...]
    compare: str | None
    length_column: str | None  # bucket sentences by this column's length in words
    metrics: tuple[str, ...]
    options: MetricOptions
    bootstrap: int  # replicates; 0 = none
    seed: int

    def widths(self) -> dict[str, int]:
        objs = make_metrics(self.options)
        return {m: stats_width(objs[m]) for m in self.metrics}


def bucket_name(words: int) -> str:
    lo = 1
    for hi in LENGTH_BUCKETS:
        if words <= hi:
            return f"{lo:02d}-{hi:02d} words"
        lo = hi + 1
    return f"{lo:02d}+ words"


def texts(table: pa.Table, column: str) -> tuple[list[str], int]:
    values = table.column(column).to_pylist()
    return [v if isinstance(v, str) else "" for v in values], sum(v is None for v in values)


def _is_list(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind)


def reference_streams(table: pa.Table, columns: tuple[str, ...]) -> tuple[list[list[str | None]], int]:
    """References as sacreBLEU wants them (one list per stream), nulls as '' and counted.

    A list<string> column may give rows different numbers of references. Each row is scored against its
    own: where it has fewer than the widest row, its streams hold None, which sacreBLEU reads as no
    reference (a variable number of references, signed nrefs:var). Padding with "" instead added an
    empty reference, the closest length for short hypotheses, and removed their brevity penalty (issue
    31: BLEU 91.00 where sacreBLEU gives 82.34). A null or empty list is one empty reference, counted.
    """
    if len(columns) == 1 and _is_list(table.schema.field(columns[0]).type):
        rows = table.column(columns[0]).to_pylist()
        nulls = sum(not r or any(x is None for x in r) for r in rows)
        lists = [[x or "" for x in r] if r else [""] for r in rows]
        width = max((len(r) for r in lists), default=1)
        return [[r[k] if k < len(r) else None for r in lists] for k in range(width)], nulls
    streams, nulls = [], 0
    for c in columns:
        column_texts, n = texts(table, c)
        streams.append(column_texts)
        nulls += n
    return streams, nulls


def group_keys(table: pa.Table, columns: tuple[str, ...]) -> list[str]:
    if not columns:
        return ["all"] * table.num_rows
    cols = [table.column(c).to_pylist() for c in columns]
    return ["|".join(NULL_KEY if v is None else str(v) for v in vals) for vals in zip(*cols, strict=True)]


class ScoreBatch:
    """Ray Data stage: a batch of rows -> partial sums per group and per length bucket."""

    def __init__(self, spec: ScoreSpec):
        self.spec = spec
        self.metrics = make_metrics(spec.options)
        self.peak_private_mb = 0.0
        self.calls = 0

    def _stats(self, hyps, refs) -> np.ndarray:
        return np.concatenate([sentence_stats(self.metrics[m], hyps, refs) for m in self.spec.metrics], axis=1)

    def __call__(self, table: pa.Table) -> pa.Table:
        spec = self.spec
        hyps, _ = texts(table, spec.hypothesis)
        refs, _ = reference_streams(table, spec.references)
        stats = self._stats(hyps, refs)  # (N, K)
        cmp = None
        if spec.compare:
            cmp = self._stats(texts(table, spec.compare)[0], refs)
        # Sampled where the batch's texts and statistics are all alive: this call's high point.
        now_private_mb = private_mb()
        self.peak_private_mb = max(self.peak_private_mb, now_private_mb)
        self.calls += 1
        weights = None
        if spec.bootstrap:
            # Seeded by the batch's content, so a re-run (or a retried task) draws the same weights.
            digest = hashlib.sha1("\x1f".join(hyps[:50]).encode() + str(len(hyps)).encode()).digest()
            rng = np.random.default_rng([spec.seed, int.from_bytes(digest[:8], "little")])
            weights = rng.poisson(1.0, size=(spec.bootstrap, len(hyps))).astype(np.float64)  # (B, N)
        keyed = [("group", group_keys(table, spec.group_by))]
        if spec.length_column:
            lengths, _ = texts(table, spec.length_column)
            keyed.append(("length", [bucket_name(len(t.split())) for t in lengths]))
        rows = []
        row_refs = np.sum([[x is not None for x in stream] for stream in refs], axis=0)  # (N,) references per row
        hyp_null = np.array([v is None for v in table.column(spec.hypothesis).to_pylist()], dtype=bool)
        ref_null = _row_ref_nulls(table, spec.references)
        cmp_null = (np.array([v is None for v in table.column(spec.compare).to_pylist()], dtype=bool)
                    if spec.compare else np.zeros(len(hyps), dtype=bool))
        for kind, keys in keyed:
            keys_arr = np.asarray(keys, dtype=object)
            for key in sorted(set(keys)):
                mask = keys_arr == key
                rows.append({
                    "kind": kind, "key": key, "sentences": int(mask.sum()),
                    "null_hypotheses": int(hyp_null[mask].sum()), "null_references": int(ref_null[mask].sum()),
                    "null_compare": int(cmp_null[mask].sum()), "refs": ref_count(row_refs[mask]),
                    "peak_rss_mb": peak_rss_mb(),
                    "peak_private_mb": self.peak_private_mb, "actor": os.getpid(), "call": self.calls,
                    "private_mb": now_private_mb,
                    "stats": stats[mask].sum(0).tolist(),
                    "boot": (weights[:, mask] @ stats[mask]).ravel().tolist() if weights is not None else [],
                    "cmp_stats": cmp[mask].sum(0).tolist() if cmp is not None else [],
                    "cmp_boot": ((weights[:, mask] @ cmp[mask]).ravel().tolist()
                                 if cmp is not None and weights is not None else []),
                })
        return pa.Table.from_pylist(rows, schema=PARTIAL_SCHEMA)


VARIABLE_REFS = -1  # sacreBLEU's num_refs when segments have different numbers of references (nrefs:var)


def ref_count(*counts) -> int:
    """The number of references of every row counted (arrays of per-row counts, or counts already
    merged; 0: none yet), or VARIABLE_REFS when they differ."""
    values = {int(c) for group in counts for c in np.atleast_1d(group)} - {0}
    return values.pop() if len(values) == 1 else (VARIABLE_REFS if values else 0)


def _row_ref_nulls(table: pa.Table, columns: tuple[str, ...]) -> np.ndarray:
    if len(columns) == 1 and _is_list(table.schema.field(columns[0]).type):
        return np.array([not r or any(x is None for x in r) for r in table.column(columns[0]).to_pylist()])
    out = np.zeros(table.num_rows, dtype=bool)
    for c in columns:
        out |= np.array([v is None for v in table.column(c).to_pylist()], dtype=bool)
    return out


PARTIAL_SCHEMA = pa.schema([
    ("kind", pa.string()), ("key", pa.string()), ("sentences", pa.int64()), ("null_hypotheses", pa.int64()),
    ("null_references", pa.int64()), ("null_compare", pa.int64()), ("refs", pa.int64()), ("peak_rss_mb", pa.float64()),
    ("peak_private_mb", pa.float64()), ("actor", pa.int64()), ("call", pa.int64()), ("private_mb", pa.float64()),
    ("stats", pa.list_(pa.float64())),
    ("boot", pa.list_(pa.float64())), ("cmp_stats", pa.list_(pa.float64())), ("cmp_boot", pa.list_(pa.float64())),
])
COUNTS = ("sentences", "null_hypotheses", "null_references", "null_compare")
VECTORS = ("stats", "boot", "cmp_stats", "cmp_boot")


class Accumulator:
    """Driver side: running sums of the partial rows, keyed by (kind, key)."""

    def __init__(self):
        self.sums: dict[tuple[str, str], dict] = {}
        self.actor_peak_rss_mb = 0.0
        self.actor_peak_private_mb = 0.0
        # Per actor (process id): {call number: private MB at that call's high point}. Whether an
        # actor's own memory is bounded shows as its last calls sitting at its first call's level.
        self.actor_calls: dict[int, dict[int, float]] = {}

    def add(self, table: pa.Table) -> None:
        for row in table.to_pylist():
            self.actor_peak_rss_mb = max(self.actor_peak_rss_mb, row["peak_rss_mb"])
            self.actor_peak_private_mb = max(self.actor_peak_private_mb, row["peak_private_mb"])
            self.actor_calls.setdefault(row["actor"], {})[row["call"]] = row["private_mb"]
            acc = self.sums.setdefault((row["kind"], row["key"]), {c: 0 for c in COUNTS} | {"refs": 0})
            for c in COUNTS:
                acc[c] += row[c]
            acc["refs"] = ref_count(acc["refs"], row["refs"])
            for v in VECTORS:
                if row[v]:
                    vec = np.asarray(row[v], dtype=np.float64)
                    acc[v] = acc[v] + vec if v in acc else vec

    def actor_memory(self) -> dict:
        """Private MB at each actor's first and last call (the largest over actors), and calls per actor."""
        calls = [dict(sorted(c.items())) for c in self.actor_calls.values()]
        return {"actor_private_mb_first_call": round(max((next(iter(c.values())) for c in calls), default=0.0), 1),
                "actor_private_mb_last_call": round(max((list(c.values())[-1] for c in calls), default=0.0), 1),
                "actor_calls": [len(c) for c in calls]}

    def kind(self, kind: str) -> dict[str, dict]:
        return {key: acc for (k, key), acc in sorted(self.sums.items()) if k == kind}

    def overall(self) -> dict:
        total = {c: 0 for c in COUNTS} | {"refs": 0}
        for acc in self.kind("group").values():
            for c in COUNTS:
                total[c] += acc[c]
            total["refs"] = ref_count(total["refs"], acc["refs"])
            for v in VECTORS:
                if v in acc:
                    total[v] = total[v] + acc[v] if v in total else acc[v].copy()
        return total


def estimate_ci(scores: np.ndarray) -> tuple[float, float]:
    """Mean and 95% half-width of bootstrap scores, as sacreBLEU's significance.estimate_ci."""
    scores = np.sort(scores)
    n = len(scores)
    lower_idx = n // 40
    upper_idx = n - lower_idx - 1
    return float(scores.mean()), float(0.5 * (scores[upper_idx] - scores[lower_idx]))


def paired_p_value(baseline: np.ndarray, system: np.ndarray, real_difference: float) -> float:
    """sacreBLEU's paired bootstrap p-value (Koehn 2004; Moses' bootstrap-hypothesis-difference-significance)."""
    sample_diffs = np.abs(system - baseline)
    centred = sample_diffs - sample_diffs.mean()
    return (int(np.sum(centred > real_difference)) + 1) / (len(centred) + 1)


def finalize(acc: dict, spec: ScoreSpec) -> dict:
    """One group's (or the corpus's) report entry from its summed statistics."""
    metrics = make_metrics(spec.options, n_refs=int(acc.get("refs") or 1))
    widths = spec.widths()
    entry = {"sentences": int(acc["sentences"]), "scores": {},
             "null_hypotheses": int(acc["null_hypotheses"]), "null_references": int(acc["null_references"])}
    K, offset = sum(widths.values()), 0
    boot = acc.get("boot")
    boot = boot.reshape(spec.bootstrap, K) if boot is not None and spec.bootstrap else None
    cmp_boot = acc.get("cmp_boot")
    cmp_boot = cmp_boot.reshape(spec.bootstrap, K) if cmp_boot is not None and spec.bootstrap else None
    for name in spec.metrics:
        m, sl = metrics[name], slice(offset, offset + widths[name])
        offset += widths[name]
        score = score_from_stats(m, acc["stats"][sl])
        out = {"score": score, "signature": signature(m)}
        if boot is not None:
            reps = np.array([score_from_stats(m, b[sl]) for b in boot])
            mean, half = estimate_ci(reps)
            out["bootstrap"] = {"mean": mean, "ci95_halfwidth": half, "ci95": [mean - half, mean + half],
                                "resamples": spec.bootstrap, "method": "poisson", "seed": spec.seed}
            if cmp_boot is not None:
                cmp_score = score_from_stats(m, acc["cmp_stats"][sl])
                cmp_reps = np.array([score_from_stats(m, b[sl]) for b in cmp_boot])
                out["compare"] = {"column": spec.compare, "score": cmp_score, "difference": cmp_score - score,
                                  "p_value": paired_p_value(reps, cmp_reps, abs(cmp_score - score)),
                                  "resamples": spec.bootstrap}
        elif spec.compare:
            out["compare"] = {"column": spec.compare, "score": score_from_stats(m, acc["cmp_stats"][sl])}
            out["compare"]["difference"] = out["compare"]["score"] - score
        entry["scores"][name] = out
    if spec.compare:
        entry["null_compare"] = int(acc["null_compare"])
    return entry

