"""Which table format holds the translation memory: Lance (pylance), Delta Lake (deltalake) or Iceberg
(pyiceberg), measured on what the memory does at 1M entries, on local disk and on S3 (moto on loopback).

    python bench/memory_formats.py                       # every section (~13 min on 2 busy cores)
    python bench/memory_formats.py --only lance delta    # some sections; the others' figures are kept
    python bench/memory_formats.py --entries 20000 --out /tmp/mf.json   # a quick check of the script

Sections: lance, delta, iceberg (each: build 1M by 50k appends as a run's shard commits would, append
1k/20k, look up 1,024 keys (half present) by key AND fingerprint from a fresh and from a kept-open table,
update last_used of 20k keys, expire + compact + clean up, 4 processes appending at once), s3 (50k entries,
append, lookup, 2 concurrent appenders, and which conditional writes each library sends), readers (pandas,
Ray Data, DuckDB). Writes bench/results/memory_formats.json with the machine description.
Times are wall seconds on a warm page cache, medians of a few runs; the machine was shared (each section
records its load average), so read them as orders of magnitude.

Outcome: Lance. A kept-open table answers 1,024 keys in ~0.1 s with a BTREE index on key (~0.15 s
without: at 1M the index halves it, a fresh open pays ~0.3 s to load it) against ~1 s for Delta (no
secondary index; Z-order or key-prefix partitions do not help 1,024 spread keys);
last_used of 20k entries is a column rewrite (~0.5 s) where Delta's MERGE rewrites the whole table
(~28 s); both commit put-if-absent on S3 and kept every concurrent append; pyiceberg needs a catalog
service for writers on object storage and gave up on 3 of 20 concurrent appends.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# pyiceberg's SqlCatalog needs SQLAlchemy, which the project does not depend on: install it aside
# (pip install --target /tmp/iceberg-deps sqlalchemy) rather than into the venv.
ICEBERG_DEPS = os.environ.get("ICEBERG_DEPS", "/tmp/iceberg-deps")

TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema([
    ("key", pa.binary()),  # 16 bytes; Delta takes pa.binary(16) but reads it back as binary (no fixed size)
    ("fingerprint", pa.string()), ("source_lang", pa.string()), ("target_lang", pa.string()),
    ("source", pa.string()), ("translation", pa.string()),
    ("hyp_ids", pa.list_(pa.list_(pa.int32()))), ("score", pa.float64()), ("nbest_scores", pa.list_(pa.float64())),
    ("length_limited", pa.bool_()), ("created", TS), ("last_used", TS),
])
# What a lookup hands back to the translator: enough to skip decoding the segment.
COLUMNS = ["key", "translation", "hyp_ids", "score", "nbest_scores", "length_limited"]
FINGERPRINTS = [hashlib.sha256(f"model-{i}".encode()).hexdigest() for i in range(4)]
RUN = FINGERPRINTS[0]  # the fingerprint of "tonight's run": lookups and new appends use it
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
EXPIRE_DAYS = 60  # last_used is spread over 90 days, so expiry drops about a third
BATCH = 50_000


# ---------------------------------------------------------------------------------------------- data

def _vocab(rng) -> list[str]:
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
    return [letters[rng.integers(0, 26, int(n))].tobytes().decode() for n in rng.integers(2, 11, 4000)]


VOCAB = _vocab(np.random.default_rng(7))


def _text(rng, n: int) -> list[str]:
    """~60-150 characters of words from a fixed vocabulary (compresses like text, unlike random letters)."""
    words, counts = rng.integers(0, len(VOCAB), (n, 24)), rng.integers(10, 24, n)
    return [" ".join(VOCAB[j] for j in row[:c]) for row, c in zip(words, counts, strict=True)]


def binary(keys: np.ndarray) -> pa.Array:
    """(n, 16) uint8 -> binary array (variable-size: the type all three formats accept)."""
    fixed = pa.Array.from_buffers(pa.binary(16), len(keys), [None, pa.py_buffer(keys.tobytes())])
    return fixed.cast(pa.binary())


def entries(n: int, fingerprint: str, seed: int) -> tuple[pa.Table, np.ndarray]:
    """n synthetic memory rows and their keys; the same seed gives the same rows in every format."""
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    hyp_len = rng.integers(20, 41, n).astype(np.int32)
    inner = pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(hyp_len)]).astype(np.int32)),
                                     pa.array(rng.integers(0, 32000, int(hyp_len.sum()), dtype=np.int32)))
    outer = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), inner)  # one hypothesis each
    now_us = int(NOW.timestamp()) * 1_000_000
    last_used = now_us - rng.integers(0, 90 * 86400, n) * 1_000_000
    created = last_used - rng.integers(0, 30 * 86400, n) * 1_000_000
    table = pa.table({
        "key": binary(keys), "fingerprint": pa.array([fingerprint] * n, pa.string()),
        "source_lang": pa.array(["en"] * n), "target_lang": pa.array(["de"] * n),
        "source": pa.array(_text(rng, n)), "translation": pa.array(_text(rng, n)), "hyp_ids": outer,
        "score": pa.array(-rng.random(n) * 20), "nbest_scores": pa.ListArray.from_arrays(
            pa.array(np.arange(n + 1, dtype=np.int32)), pa.array(-rng.random(n) * 20)),
        "length_limited": pa.array(rng.random(n) < 0.01),
        "created": pa.array(created, TS), "last_used": pa.array(last_used, TS),
    }, schema=SCHEMA)
    return table, keys


class Corpus:
    """The 1M-entry memory as 50k-row appends (fingerprint changes every quarter: four nightly models),
    plus the keys the lookups ask for: half present with RUN's fingerprint, half absent."""

    def __init__(self, total: int, batch: int = BATCH):
        self.batches = [(min(batch, total - i), FINGERPRINTS[i * 4 // total], 1000 + i // batch)
                        for i in range(0, total, batch)]
        self.run_keys: list[np.ndarray] = []
        self.all_keys: list[np.ndarray] = []

    def __iter__(self):
        for n, fingerprint, seed in self.batches:
            table, keys = entries(n, fingerprint, seed)
            self.all_keys.append(keys)
            if fingerprint == RUN:
                self.run_keys.append(keys)
            yield table

    def lookup_keys(self, recent: np.ndarray | None = None, n: int = 1024, seed: int = 5) -> pa.Array:
        """n keys: n/2 absent, n/2 present (a quarter from `recent`, the just-appended batch, if given)."""
        rng = np.random.default_rng(seed)
        old = np.concatenate(self.run_keys)
        present = [old[rng.choice(len(old), n // 2 - (n // 4 if recent is not None else 0), replace=False)]]
        if recent is not None:
            present.append(recent[rng.choice(len(recent), n // 4, replace=False)])
        keys = np.concatenate([*present, rng.integers(0, 256, (n // 2, 16), dtype=np.uint8)])
        return binary(keys[rng.permutation(len(keys))])

    def absent_keys(self, n: int = 1024, seed: int = 9) -> pa.Array:
        """Keys none of which is in the memory: what filtering alone costs, without fetching rows."""
        return binary(np.random.default_rng(seed).integers(0, 256, (n, 16), dtype=np.uint8))

    def sample(self, n: int, seed: int = 6) -> pa.Array:
        everything = np.concatenate(self.all_keys)
        return binary(everything[np.random.default_rng(seed).choice(len(everything), n, replace=False)])


# --------------------------------------------------------------------------------------- the formats

def key_filter(keys: pa.Array, fingerprint: str) -> pc.Expression:
    return (pc.field("fingerprint") == fingerprint) & pc.field("key").isin(keys)


def key_sql(keys: pa.Array, fingerprint: str) -> str:
    """The same predicate as SQL (DataFusion, which both Lance and deltalake embed): binary literals X'..'."""
    literals = ",".join(f"X'{k.hex()}'" for k in keys.to_pylist())
    return f"fingerprint = '{fingerprint}' AND key IN ({literals})"


class Lance:
    name = "lance"

    def __init__(self, uri: str, storage_options: dict | None = None):
        self.uri, self.options = uri, storage_options

    def open(self):
        import lance

        return lance.dataset(self.uri, storage_options=self.options)

    def append(self, table: pa.Table) -> None:
        import lance

        # A commit is a new manifest written put-if-absent; on a lost race Lance re-reads and retries
        # (appends never conflict with each other), so concurrent appenders need no lock.
        lance.write_dataset(table, self.uri, mode="append", storage_options=self.options)

    def refresh(self, handle):
        handle.checkout_latest()  # a kept-open dataset stays on its version until told
        return handle

    def lookup(self, handle, keys: pa.Array, fingerprint: str) -> pa.Table:
        return handle.to_table(columns=COLUMNS, filter=key_filter(keys, fingerprint))

    def count(self) -> int:
        return self.open().count_rows()


class Delta:
    name = "delta"

    def __init__(self, uri: str, storage_options: dict | None = None):
        self.uri, self.options = uri, storage_options

    def open(self):
        from deltalake import DeltaTable

        table = DeltaTable(self.uri, storage_options=self.options)
        return table, table.to_pyarrow_dataset()

    def append(self, table: pa.Table) -> None:
        from deltalake import write_deltalake

        # The commit is _delta_log/N.json written put-if-absent; a writer that loses the race re-reads the
        # log, checks the winner's actions for conflicts (blind appends have none) and retries as N+1.
        write_deltalake(self.uri, table, mode="append", storage_options=self.options)

    def refresh(self, handle):
        table, _ = handle
        table.update_incremental()
        return table, table.to_pyarrow_dataset()

    def lookup(self, handle, keys: pa.Array, fingerprint: str) -> pa.Table:
        return handle[1].to_table(columns=COLUMNS, filter=key_filter(keys, fingerprint))

    def lookup_sql(self, handle, keys: pa.Array, fingerprint: str) -> pa.Table:
        from deltalake import QueryBuilder

        query = QueryBuilder().register("memory", handle[0])
        return pa.table(query.execute(f"SELECT {', '.join(COLUMNS)} FROM memory WHERE {key_sql(keys, fingerprint)}")
                        .read_all())

    def count(self) -> int:
        return self.open()[0].count()


class Iceberg:
    """pyiceberg writes through a catalog; the only one without a service is SqlCatalog on a sqlite
    file, which is local to one machine."""

    name = "iceberg"

    def __init__(self, uri: str, storage_options: dict | None = None):
        self.uri = uri

    def catalog(self):
        if ICEBERG_DEPS not in sys.path:
            sys.path.append(ICEBERG_DEPS)
        from pyiceberg.catalog.sql import SqlCatalog

        return SqlCatalog("memory", uri=f"sqlite:///{self.uri}/catalog.db", warehouse=f"file://{self.uri}/warehouse")

    def open(self):
        return self.catalog().load_table("memory.entries")

    def create(self) -> None:
        os.makedirs(self.uri, exist_ok=True)
        catalog = self.catalog()
        catalog.create_namespace("memory")
        catalog.create_table("memory.entries", schema=SCHEMA)

    def append(self, table: pa.Table) -> None:
        self.open().append(table)  # raises CommitFailedException when another writer committed first

    def refresh(self, handle):
        return handle.refresh()

    def lookup(self, handle, keys: pa.Array, fingerprint: str) -> pa.Table:
        from pyiceberg.expressions import And, EqualTo, In

        row_filter = And(EqualTo("fingerprint", fingerprint), In("key", set(keys.to_pylist())))
        return handle.scan(row_filter=row_filter, selected_fields=tuple(COLUMNS)).to_arrow()

    def count(self) -> int:
        return self.open().scan(selected_fields=("key",)).to_arrow().num_rows


FORMATS = {"lance": Lance, "delta": Delta, "iceberg": Iceberg}


# -------------------------------------------------------------------------------------- measurements

def seconds(fn, repeat: int = 1):
    """Median wall seconds of `repeat` calls, and the last call's result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 4), result


def disk(path: str) -> dict:
    """Files and bytes under a local table, by top folder (data, _versions, _delta_log, ...)."""
    out: dict = {"files": 0, "bytes": 0, "by_folder": {}}
    for folder, _, names in os.walk(path):
        top = os.path.relpath(folder, path).split(os.sep)[0]
        top = "(root)" if top == "." else top
        for name in names:
            size = os.path.getsize(os.path.join(folder, name))
            out["files"] += 1
            out["bytes"] += size
            out["by_folder"][top] = out["by_folder"].get(top, 0) + 1
    return out


def build(mem, corpus: Corpus) -> dict:
    """The memory as nightly runs leave it: one append per committed shard (generating the rows not timed)."""
    times = []
    for table in corpus:
        t0 = time.perf_counter()
        mem.append(table)
        times.append(time.perf_counter() - t0)
    return {"entries": sum(n for n, _, _ in corpus.batches), "appends": len(corpus.batches),
            "append_seconds_total": round(sum(times), 1), "append_median_s": round(statistics.median(times), 3),
            "append_last_s": round(times[-1], 3)}


def lookups(mem, keys: pa.Array, expect: int, repeat: int = 5, sql: bool = False) -> dict:
    """Fresh: open the table and look up (what a new actor pays once). Open: a kept handle, after one warm-up."""
    lookup = mem.lookup_sql if sql else mem.lookup
    try:
        fresh, found = seconds(lambda: lookup(mem.open(), keys, RUN).num_rows, repeat)
    except Exception as e:  # noqa: BLE001 - a lookup path that breaks is a finding, recorded as such
        return {"error": f"{type(e).__name__}: {str(e)[:200]}"}
    handle = mem.open()
    lookup(handle, keys, RUN)
    kept, found_kept = seconds(lambda: lookup(handle, keys, RUN).num_rows, repeat)
    assert found == found_kept == expect, (found, found_kept, expect)
    return {"fresh_s": fresh, "open_s": kept, "found": found, "keys": len(keys)}


def appends(mem, sizes=(1000, 20_000), repeat: int = 3, seed: int = 50, files=None) -> tuple[dict, np.ndarray]:
    """Median time of appending new entries to the big table; what each append leaves (files, versions)."""
    out, keys = {}, None
    for size in sizes:
        times = []
        before = files() if files else None
        for i in range(repeat):
            table, keys = entries(size, RUN, seed + size + i)
            t0 = time.perf_counter()
            mem.append(table)
            times.append(time.perf_counter() - t0)
        out[str(size)] = {"median_s": round(statistics.median(times), 4), "times_s": [round(t, 4) for t in times]}
        if files:
            after = files()
            out[str(size)]["new_files_per_append"] = round((after["files"] - before["files"]) / repeat, 1)
    return out, keys


def _appender(fmt: str, uri: str, options: dict | None, batches: int, rows: int, seed: int, barrier, results) -> None:
    """One of the concurrent writers (a spawned process): prepare its batches, wait for the others, append."""
    mem = FORMATS[fmt](uri, options)
    tables = [entries(rows, RUN, seed + i)[0] for i in range(batches)]
    barrier.wait()
    done, errors, t0 = 0, [], time.perf_counter()
    for table in tables:
        try:
            mem.append(table)
            done += 1
        except Exception as e:  # noqa: BLE001 - reported, not hidden: the row count check follows
            errors.append(f"{type(e).__name__}: {str(e)[:300]}")
    results.put({"appended": done, "errors": errors, "seconds": round(time.perf_counter() - t0, 2)})


def concurrent(mem, procs: int, batches: int, rows: int, seed: int, while_main=None) -> dict:
    """`procs` spawned processes append `batches` x `rows` each at the same moment (and the main process runs
    `while_main`, e.g. a compaction, meanwhile); then the row count must be exactly what was committed."""
    ctx = mp.get_context("spawn")
    before = mem.count()
    barrier, results = ctx.Barrier(procs + 1), ctx.Queue()
    workers = [ctx.Process(target=_appender, args=(mem.name, mem.uri, getattr(mem, "options", None), batches, rows,
                                                  seed + 100 * p, barrier, results)) for p in range(procs)]
    for w in workers:
        w.start()
    barrier.wait()
    t0 = time.perf_counter()
    main = {}
    if while_main:
        main["seconds"], main["result"] = seconds(while_main)
    reports = [results.get(timeout=600) for _ in workers]
    for w in workers:
        w.join()
    wall = round(time.perf_counter() - t0, 2)
    appended = sum(r["appended"] for r in reports)
    after = mem.count()
    out = {"processes": procs, "appends_each": batches, "rows_each_append": rows, "seconds": wall,
           "appends_committed": appended, "rows_before": before, "rows_after": after,
           # exact: every committed append is there once, nothing else; all_committed: no writer gave up
           "exact": after == before + appended * rows, "all_committed": appended == procs * batches,
           "errors": [e for r in reports for e in r["errors"]][:5]}
    if while_main:
        out["meanwhile"] = main
    return out


# ------------------------------------------------------------------------------------------ sections

def bench_lance(work: str, corpus: Corpus) -> dict:
    mem = Lance(os.path.join(work, "lance"))
    res = {"build": build(mem, corpus)}
    ds = mem.open()
    res["build"].update(versions=ds.version, fragments=len(ds.get_fragments()), disk=disk(mem.uri))
    keys = corpus.lookup_keys()
    res["lookup_no_index"] = lookups(mem, keys, 512, repeat=3)
    res["lookup_no_index_absent_only"] = lookups(mem, corpus.absent_keys(), 0, repeat=3)

    res["btree_index_build_s"], _ = seconds(lambda: mem.open().create_scalar_index("key", "BTREE"))
    res["lookup_btree"] = lookups(mem, keys, 512)
    res["lookup_btree_absent_only"] = lookups(mem, corpus.absent_keys(), 0, repeat=3)
    ds = mem.open()
    ds.to_table(columns=COLUMNS, filter=key_sql(keys, RUN))  # the same warm-up as lookups() does
    res["lookup_btree_sql_string"] = {
        "open_s": seconds(lambda: ds.to_table(columns=COLUMNS, filter=key_sql(keys, RUN)).num_rows, 5)[0]}
    plan = ds.scanner(filter=key_filter(keys, RUN)).explain_plan()
    res["lookup_btree"]["plan_uses_index"] = "ScalarIndexQuery" in plan

    stale = mem.open()  # an actor's handle opened before the appends below
    res["append"], recent = appends(mem, files=lambda: disk(mem.uri))
    res["append"]["versions_after"] = mem.open().version
    keys = corpus.lookup_keys(recent)
    stats = mem.open().index_statistics("key_idx")
    # New fragments are not in the BTREE until optimize_indices: Lance scans them (correct, just slower).
    res["lookup_after_append_unindexed"] = {
        **lookups(mem, keys, 512), "unindexed_rows": stats["num_unindexed_rows"],
        "unindexed_fragments": stats["num_unindexed_fragments"],
        "kept_open_handle_without_refresh_finds": mem.lookup(stale, keys, RUN).num_rows,
        "refresh_s": seconds(lambda: mem.refresh(stale))[0]}
    res["optimize_indices_s"], _ = seconds(lambda: mem.open().optimize.optimize_indices())
    stats = mem.open().index_statistics("key_idx")
    res["lookup_after_optimize_indices"] = {**lookups(mem, keys, 512), "unindexed_rows": stats["num_unindexed_rows"]}

    # last_used of 20k entries met again tonight: merge_insert with only (key, last_used) rewrites that column.
    touched = corpus.sample(20_000)
    update = pa.table({"key": touched, "last_used": pa.array([NOW] * len(touched), TS)})
    before = disk(mem.uri)
    res["update_last_used"] = {"keys": len(touched)}
    res["update_last_used"]["seconds"], metrics = seconds(
        lambda: mem.open().merge_insert("key").when_matched_update_all().execute(update))
    after = disk(mem.uri)
    res["update_last_used"].update(metrics=metrics, new_files=after["files"] - before["files"],
                                   new_bytes=after["bytes"] - before["bytes"])
    ds = mem.open()
    res["update_last_used"]["verified"] = ds.count_rows(filter=pc.field("last_used") == pa.scalar(NOW, TS)) == 20_000

    res["expire_compact_cleanup"] = expire_lance(mem)
    # Some looked-up keys expired: count the survivors by a plain scan, without the index.
    expect = mem.open().scanner(columns=["key"], filter=key_filter(keys, RUN), use_scalar_index=False).count_rows()
    res["lookup_after_compaction"] = lookups(mem, keys, expect)
    stats = mem.open().index_statistics("key_idx")
    res["lookup_after_compaction"]["unindexed_rows"] = stats["num_unindexed_rows"]

    res["concurrent_appends"] = concurrent(mem, procs=4, batches=5, rows=1000, seed=7000)
    res["append_during_compaction"] = concurrent(mem, procs=1, batches=5, rows=1000, seed=8000,
                                                 while_main=lambda: compact_lance(mem))
    res["pandas"] = pandas_check(mem.open().head(100))
    return res


def compact_lance(mem) -> dict:
    m = mem.open().optimize.compact_files()
    return {"fragments_removed": m.fragments_removed, "fragments_added": m.fragments_added}


def expire_lance(mem) -> dict:
    cutoff = NOW - dt.timedelta(days=EXPIRE_DAYS)
    rows, before = mem.count(), disk(mem.uri)
    out = {"rows_before": rows, "disk_before": before}
    # A naive TIMESTAMP literal is taken as UTC against the timestamp[us, UTC] column (the same rows go as
    # with Delta's '...+00:00').
    out["delete_s"], _ = seconds(lambda: mem.open().delete(f"last_used < TIMESTAMP '{cutoff:%Y-%m-%d %H:%M:%S}'"))
    out["rows_after"] = mem.count()
    out["compact_s"], out["compact"] = seconds(lambda: compact_lance(mem))
    # Old versions are what a reader still on one needs: the bench keeps none, a real run would keep an hour
    # or a day. (Files of unfinished writes are only removed after 7 days unless delete_unverified=True.)
    out["cleanup_s"], stats = seconds(lambda: mem.open().cleanup_old_versions(older_than=dt.timedelta(0)))
    out["cleanup"] = {"bytes_removed": stats.bytes_removed, "old_versions": stats.old_versions}
    out["disk_after"] = disk(mem.uri)
    out["deleted_rows"] = rows - out["rows_after"]
    return out


def bench_delta(work: str, corpus: Corpus) -> dict:
    from deltalake import BloomFilterProperties, ColumnProperties, WriterProperties

    mem = Delta(os.path.join(work, "delta"))
    res = {"build": build(mem, corpus)}
    table, _ = mem.open()
    res["build"].update(version=table.version(), active_files=len(table.file_uris()), disk=disk(mem.uri))
    keys = corpus.lookup_keys()
    res["lookup_pyarrow_dataset"] = lookups(mem, keys, 512, repeat=3)
    res["lookup_pyarrow_dataset_absent_only"] = lookups(mem, corpus.absent_keys(), 0, repeat=3)
    res["lookup_querybuilder_sql"] = lookups(mem, keys, 512, repeat=3, sql=True)

    stale = mem.open()
    res["append"], recent = appends(mem, files=lambda: disk(mem.uri))
    res["append"]["version_after"] = mem.open()[0].version()
    keys = corpus.lookup_keys(recent)
    res["lookup_after_append"] = {**lookups(mem, keys, 512, repeat=3),
                                  "kept_open_handle_without_refresh_finds": mem.lookup(stale, keys, RUN).num_rows,
                                  "refresh_s": seconds(lambda: mem.refresh(stale))[0]}

    touched = corpus.sample(20_000)
    update = pa.table({"key": touched, "last_used": pa.array([NOW] * len(touched), TS)})
    before = disk(mem.uri)
    res["update_last_used"] = {"keys": len(touched)}
    # No deletion vectors from delta-rs: every file holding one of the keys is rewritten whole.
    res["update_last_used"]["seconds"], metrics = seconds(lambda: mem.open()[0].merge(
        update, predicate="t.key = s.key", source_alias="s", target_alias="t")
        .when_matched_update(updates={"last_used": "s.last_used"}).execute())
    after = disk(mem.uri)
    res["update_last_used"].update(
        metrics={k: metrics[k] for k in ("num_target_rows_updated", "num_target_files_added",
                                         "num_target_files_removed", "num_target_rows_copied") if k in metrics},
        new_files=after["files"] - before["files"], new_bytes=after["bytes"] - before["bytes"])
    res["update_last_used"]["verified"] = mem.open()[1].count_rows(filter=pc.field("last_used") == pa.scalar(NOW, TS)) \
        == 20_000
    # delta-rs 1.6 writes the files MERGE and DELETE rewrite with string_view/binary_view in their Arrow schema
    # (delta-rs#4579); pyarrow's filter on key then fails on them. DataFusion (QueryBuilder) reads them.
    res["lookup_after_update"] = {"pyarrow_dataset": lookups(mem, keys, 512, repeat=3),
                                  "querybuilder_sql": lookups(mem, keys, 512, repeat=3, sql=True)}

    bloom = WriterProperties(column_properties={"key": ColumnProperties(
        bloom_filter_properties=BloomFilterProperties(True, fpp=0.01))})
    res["expire_compact_vacuum"] = expire_delta(mem, bloom)
    expect = mem.lookup_sql(mem.open(), keys, RUN).num_rows  # some looked-up keys expired
    # compact() above wrote the files with a bloom filter on key: DataFusion (QueryBuilder) can prune row
    # groups with it, pyarrow cannot.
    res["lookup_after_compaction_with_bloom"] = {"pyarrow_dataset": lookups(mem, keys, expect, repeat=3),
                                                 "querybuilder_sql": lookups(mem, keys, expect, repeat=3, sql=True)}
    # Z-order rewrites every file (through a path that writes plain string/binary again).
    res["z_order_key_s"], metrics = seconds(lambda: mem.open()[0].optimize.z_order(["key"], writer_properties=bloom))
    mem.open()[0].vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    table, _ = mem.open()
    res["lookup_after_z_order_key"] = {"pyarrow_dataset": lookups(mem, keys, expect, repeat=3),
                                       "querybuilder_sql": lookups(mem, keys, expect, repeat=3, sql=True),
                                       "active_files": len(table.file_uris())}
    res["partition_by_key_prefix"] = partition_delta(work)

    res["concurrent_appends"] = concurrent(mem, procs=4, batches=5, rows=1000, seed=7000)
    res["append_during_compaction"] = concurrent(mem, procs=1, batches=5, rows=1000, seed=8000,
                                                 while_main=lambda: compact_delta(mem))
    res["pandas"] = pandas_check(mem.open()[1].head(100))
    return res


def compact_delta(mem, properties=None) -> dict:
    m = mem.open()[0].optimize.compact(writer_properties=properties)
    return {"files_removed": m["numFilesRemoved"], "files_added": m["numFilesAdded"]}


def expire_delta(mem, properties) -> dict:
    cutoff = NOW - dt.timedelta(days=EXPIRE_DAYS)
    rows = mem.count()
    out = {"rows_before": rows, "disk_before": disk(mem.uri)}
    out["delete_s"], metrics = seconds(lambda: mem.open()[0].delete(f"last_used < '{cutoff.isoformat()}'",
                                                                    writer_properties=properties))
    out["delete"] = {k: metrics.get(k) for k in ("num_deleted_rows", "num_added_files", "num_removed_files")}
    out["rows_after"] = mem.count()
    out["deleted_rows"] = rows - out["rows_after"]
    out["compact_s"], out["compact"] = seconds(lambda: compact_delta(mem, properties))
    table = mem.open()[0]
    # retention 0 and no enforcement: the bench keeps no old versions; a real run keeps e.g. 24 hours so a
    # reader still on an old version finds its files.
    out["vacuum_s"], removed = seconds(lambda: table.vacuum(retention_hours=0, enforce_retention_duration=False,
                                                            dry_run=False))
    out["vacuum_files_removed"] = len(removed)
    out["checkpoint_s"], _ = seconds(lambda: (table.create_checkpoint(), table.cleanup_metadata()))
    out["disk_after"] = disk(mem.uri)
    return out


def partition_delta(work: str) -> dict:
    """Partitioning by a key prefix: one 1k append writes one file per prefix, and 1,024 uniformly spread
    keys touch (almost) every partition, so it prunes nothing for a batch lookup."""
    from deltalake import write_deltalake

    uri = os.path.join(work, "delta-partitioned")
    table, _ = entries(1000, RUN, 99)
    table = table.append_column("key_prefix", pa.array([k.hex()[0] for k in table.column("key").to_pylist()]))
    write_deltalake(uri, table, partition_by=["key_prefix"])
    parts = {n: round(n * (1 - (1 - 1 / n) ** 1024), 1) for n in (16, 256, 4096)}
    return {"prefix": "first hex digit of key (16 partitions)", "files_written_by_one_1k_append": sum(
        1 for f in disk(uri)["by_folder"] if f.startswith("key_prefix=")),
        "expected_partitions_touched_by_1024_keys": parts}


def bench_iceberg(work: str, corpus: Corpus) -> dict:
    mem = Iceberg(os.path.join(work, "iceberg"))
    mem.create()
    res = {"catalog": "SqlCatalog on a sqlite file (sqlalchemy installed aside); warehouse on local disk",
           "build": build(mem, corpus)}
    res["build"]["disk"] = disk(mem.uri)
    res["build"]["snapshots"] = len(mem.open().snapshots())
    keys = corpus.lookup_keys()
    res["lookup"] = lookups(mem, keys, 512, repeat=3)
    res["append"], recent = appends(mem, files=lambda: disk(mem.uri))
    res["lookup_after_append"] = lookups(mem, corpus.lookup_keys(recent), 512, repeat=3)
    res["concurrent_appends"] = concurrent(mem, procs=4, batches=5, rows=1000, seed=7000)
    res["pandas"] = pandas_check(mem.open().scan(limit=100).to_arrow())
    res["not_measured"] = ("update last_used (pyiceberg has upsert(), a Python-side join: no partial update), "
                           "compaction (pyiceberg 0.12 has no rewrite_data_files; table.maintenance offers only "
                           "expire_snapshots), S3 (a sqlite catalog is one machine's file: concurrent writers on "
                           "object storage need a catalog service - REST, Glue, Hive or a shared SQL database)")
    return res


def pandas_check(table: pa.Table) -> dict:
    """Whole rows as the library hands them back (Arrow types after the round trip) and as pandas sees them."""
    frame = table.to_pandas()
    return {"rows": len(frame), "arrow_types": {f.name: str(f.type) for f in table.schema},
            "pandas_dtypes": {c: str(t) for c, t in frame.dtypes.items()},
            "key_python_type": type(frame["key"].iloc[0]).__name__,
            "hyp_ids_python_type": f"{type(frame['hyp_ids'].iloc[0]).__name__} of "
                                   f"{type(frame['hyp_ids'].iloc[0][0]).__name__}"}


# ------------------------------------------------------------------------------------------------ S3

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_s3(port: int, log: str) -> None:
    """moto's S3 server (as `python -m moto.server`) with two additions: conditional writes are logged (which
    library sends If-None-Match / If-Match, and how often it lost), and serialised, because moto checks the
    condition and stores the object in two steps without a lock; S3 does both atomically."""
    import threading

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    app, lock = DomainDispatcherApplication(create_backend_app), threading.Lock()

    def logged(environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        headers = {h: environ.get(f"HTTP_{h.upper().replace('-', '_')}") for h in
                   ("If-None-Match", "If-Match", "X-Amz-Copy-Source")}
        commit = any(p in path for p in ("/_delta_log/", "/_versions/")) and method in ("PUT", "POST", "DELETE")
        if not (commit or headers["If-None-Match"] or headers["If-Match"]):
            return app(environ, start_response)
        status = []

        def record(s, h, exc_info=None):
            status.append(s[:3])
            return start_response(s, h, exc_info)

        if headers["If-None-Match"] or headers["If-Match"]:
            with lock:
                body = list(app(environ, record))
        else:
            body = list(app(environ, record))
        with open(log, "a") as f:
            f.write(json.dumps({"method": method, "path": path, "status": status[0] if status else None,
                                **{k: v for k, v in headers.items() if v}}) + "\n")
        return body

    run_simple("127.0.0.1", port, logged, threaded=True, request_handler=MotoRequestHandler)


def start_s3(work: str):
    port, log = free_port(), os.path.join(work, "s3-requests.jsonl")
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-s3", str(port), log],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, f"http://127.0.0.1:{port}", log
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError("moto S3 server did not start") from None
            time.sleep(0.2)


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                        region_name="us-east-1")


def moto_conditional_put(client, bucket: str) -> dict:
    """Does the server refuse a second put-if-absent (412)? What S3 has done since Aug 2024."""
    client.put_object(Bucket=bucket, Key="probe", Body=b"1", IfNoneMatch="*")
    try:
        client.put_object(Bucket=bucket, Key="probe", Body=b"2", IfNoneMatch="*")
        return {"if_none_match_honoured": False}
    except client.exceptions.ClientError as e:
        return {"if_none_match_honoured": e.response["ResponseMetadata"]["HTTPStatusCode"] == 412,
                "second_put": e.response["Error"]["Code"]}


def storage_options(fmt: str, endpoint: str) -> list[dict]:
    """Candidates in order of preference; the first that writes and reads is used."""
    if fmt == "lance":
        base = {"aws_endpoint": endpoint, "allow_http": "true", "aws_access_key_id": "testing",
                "aws_secret_access_key": "testing", "aws_region": "us-east-1"}
        return [base]
    base = {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    return [base, {**base, "aws_conditional_put": "etag"}, {**base, "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}]


def requests_summary(log: str, bucket: str) -> dict:
    """Commit-relevant requests one library sent to its bucket: method, conditional header, status."""
    out: dict = {}
    if not os.path.exists(log):
        return out
    with open(log) as f:
        for line in f:
            r = json.loads(line)
            if not r["path"].startswith(f"/{bucket}/"):
                continue
            cond = ("If-None-Match" if "If-None-Match" in r else "If-Match" if "If-Match" in r
                    else "copy" if "X-Amz-Copy-Source" in r else "unconditional")
            folder = "_delta_log" if "/_delta_log/" in r["path"] else "_versions" if "/_versions/" in r["path"] \
                else "other"
            name = f"{r['method']} {folder} {cond} -> {r['status']}"
            out[name] = out.get(name, 0) + 1
    return out


def bench_s3(work: str, entries_total: int) -> dict:
    proc, endpoint, log = start_s3(work)
    res: dict = {"server": "moto 5 (python -m moto.server equivalent) on loopback, conditional writes serialised",
                 "entries": entries_total}
    try:
        client = s3_client(endpoint)
        client.create_bucket(Bucket="probe")
        res["moto"] = moto_conditional_put(client, "probe")
        for fmt, cls in (("lance", Lance), ("delta", Delta)):
            res[fmt] = s3_format(client, endpoint, log, fmt, cls, entries_total)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return res


def s3_format(client, endpoint: str, log: str, fmt: str, cls, total: int) -> dict:
    out: dict = {"storage_options_tried": []}
    chosen = None
    for i, options in enumerate(storage_options(fmt, endpoint)):
        bucket = f"{fmt}-probe-{i}"
        client.create_bucket(Bucket=bucket)
        mem = cls(f"s3://{bucket}/memory", options)
        try:
            mem.append(entries(100, RUN, 1)[0])
            mem.append(entries(100, RUN, 2)[0])
            ok = mem.count() == 200
            error = None
        except Exception as e:  # noqa: BLE001 - the failure is the finding
            ok, error = False, f"{type(e).__name__}: {str(e)[:300]}"
        shown = {k: ("testing" if "testing" in v else v.replace(endpoint, "http://127.0.0.1:PORT"))
                 for k, v in options.items()}
        out["storage_options_tried"].append({"options": shown, "works": ok, "error": error,
                                             "commit_requests": requests_summary(log, bucket)})
        if ok and chosen is None:
            chosen = options
    if chosen is None:
        return out
    client.create_bucket(Bucket=f"{fmt}-bench")
    mem = cls(f"s3://{fmt}-bench/memory", chosen)
    corpus = Corpus(total, batch=10_000)
    out["build"] = build(mem, corpus)
    if fmt == "lance":
        out["btree_index_build_s"], _ = seconds(lambda: mem.open().create_scalar_index("key", "BTREE"))
    keys = corpus.lookup_keys()
    out["lookup"] = lookups(mem, keys, 512, repeat=3)
    out["append"], _ = appends(mem, sizes=(1000,), repeat=3)
    out["concurrent_appends"] = concurrent(mem, procs=2, batches=5, rows=1000, seed=7000)
    out["concurrent_appends_4"] = concurrent(mem, procs=4, batches=5, rows=1000, seed=9000)  # more lost races
    out["commit_requests"] = requests_summary(log, f"{fmt}-bench")  # a 412 is a race lost and retried
    return out


def readers() -> dict:
    import importlib.util
    import inspect

    import ray
    import ray.data  # importing starts nothing; no Ray cluster is used here

    out = {"ray": ray.__version__, "note": "signatures read with inspect; Ray is not started"}
    for name in ("read_lance", "read_delta", "read_iceberg"):
        fn = getattr(ray.data, name, None)
        out[f"ray.data.{name}"] = str(inspect.signature(fn)) if fn else None
    out["duckdb_installed"] = importlib.util.find_spec("duckdb") is not None
    return out


# ---------------------------------------------------------------------------------------------- main

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--s3-entries", type=int, default=50_000)
    p.add_argument("--only", nargs="*", default=["lance", "delta", "iceberg", "s3", "readers"])
    p.add_argument("--work", default=None, help="folder for the tables (default: a temporary one, removed)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "memory_formats.json"))
    p.add_argument("--serve-s3", nargs=2, metavar=("PORT", "LOG"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_s3:
        serve_s3(int(args.serve_s3[0]), args.serve_s3[1])
        return 0
    import deltalake
    import lance
    import pyiceberg

    from bench.machine import cpu_info

    result = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            result = json.load(f)
    result.update(machine=cpu_info(), versions={"pylance": lance.__version__, "deltalake": deltalake.__version__,
                                                "pyiceberg": pyiceberg.__version__, "pyarrow": pa.__version__})
    result.setdefault("config", {}).update(entries=args.entries, append_batch=BATCH, fingerprints=len(FINGERPRINTS),
                                           lookup_keys=1024, expire_days=EXPIRE_DAYS, s3_entries=args.s3_entries)
    work = args.work or tempfile.mkdtemp(prefix="memfmt-")
    os.makedirs(work, exist_ok=True)
    benches = {"lance": bench_lance, "delta": bench_delta, "iceberg": bench_iceberg}
    try:
        for section in args.only:
            t0, load = time.perf_counter(), os.getloadavg()[0]  # the machine is shared: say how busy it was
            if section in benches:
                result[section] = benches[section](work, Corpus(args.entries))
                shutil.rmtree(os.path.join(work, section), ignore_errors=True)
            elif section == "s3":
                result["s3"] = bench_s3(work, args.s3_entries)
            elif section == "readers":
                result["readers"] = readers()
            result[section].update(section_seconds=round(time.perf_counter() - t0, 1),
                                   load_average_1min={"start": round(load, 1), "end": round(os.getloadavg()[0], 1)})
            print(section, json.dumps(result[section], indent=1)[:3000], flush=True)
            os.makedirs(os.path.dirname(args.out), exist_ok=True)
            with open(args.out, "w") as f:
                json.dump(result, f, indent=2)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
