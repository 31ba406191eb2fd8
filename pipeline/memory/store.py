"""The translation memory: a Lance dataset at any URI that runs share (`--memory`).

One row per segment translation, keyed by `key` (pipeline/memory/keys.py: the segment's ids under the
fingerprint of model and settings). Lance was measured against Delta Lake and Iceberg for this use
(bench/memory_formats.py; README, "Translation memory"): a lookup is a batch of point queries, which Lance
answers from a B-tree index on `key`, and runs add rows with `merge_insert`, which commits with optimistic
concurrency (a concurrent commit is retried, not lost). The memory is an ordinary Lance dataset: pandas
(`lance.dataset(uri).to_table().to_pandas()`), DuckDB and Ray Data (`ray.data.read_lance`) read it.

Writes happen when a shard commits (pipeline/output/commit.py): new translations are inserted, and rows
taken from the memory get their `last_used` refreshed, so that `jobs/compact_memory.py` can drop what no
run has used for N days. A run that dies loses only what it had not committed.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.memory.keys import MEMORY_COLUMN, REUSE_DECODED, REUSE_MEMORY

MEMORY_SCHEMA = SCHEMA = pa.schema([
    ("key", pa.string()),  # 32 hex digits (pipeline/memory/keys.py segment_keys)
    ("fingerprint", pa.string()),  # the model files and settings the translation was made with (memory_fingerprint)
    ("source_lang", pa.string()),
    ("target_lang", pa.string()),
    ("source", pa.string()),  # the segment's text, as cut from its row (audit: the key is of its ids)
    ("translation", pa.string()),  # the best translation's text
    ("hyp_ids", pa.list_(pa.list_(pa.int32()))),  # what the model actor produced: n-best target ids
    ("score", pa.float64()),
    ("nbest_scores", pa.list_(pa.float64())),
    ("length_limited", pa.bool_()),
    ("last_used", pa.timestamp("us", tz="UTC")),  # when a run last wrote or reused it
])
OUTCOME = ("hyp_ids", "score", "nbest_scores", "length_limited")  # what a reused row takes from its entry
LOOKUP_CHUNK = 2000  # keys per query: one IN list the B-tree answers


def lance_location(uri: str, storage_options: dict | None) -> tuple[str, dict[str, str]]:
    """The URI and storage options Lance (Rust's object_store) takes for one of our fsspec URIs and options.

    fsspec's S3 options (`endpoint_url`, `key`, `secret`, or `client_kwargs`) become object_store's; an
    endpoint given only in the environment (AWS_ENDPOINT_URL, as for any AWS tool) is passed on too, and
    http endpoints (a local S3 server) need `allow_http`.
    """
    so = dict(storage_options or {})
    if "://" not in uri or uri.startswith("file://"):
        return os.path.abspath(uri.removeprefix("file://")), {}
    out: dict[str, str] = {}
    client = so.get("client_kwargs") or {}
    endpoint = so.get("endpoint_url") or client.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        out["aws_endpoint"] = endpoint
        if endpoint.startswith("http://"):
            out["allow_http"] = "true"
    for ours, theirs in (("key", "aws_access_key_id"), ("secret", "aws_secret_access_key"),
                         ("token", "aws_session_token")):
        if so.get(ours):
            out[theirs] = so[ours]
    region = client.get("region_name") or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    if uri.startswith("s3://"):
        out["aws_region"] = region or "us-east-1"
    return uri.rstrip("/"), out


class TranslationMemory:
    """One memory, opened once per process (a model actor keeps it for its lookups)."""

    def __init__(self, uri: str, storage_options: dict | None = None):
        self.uri = uri
        self.location, self.options = lance_location(uri, storage_options)
        self._dataset = None

    def exists(self) -> bool:
        import lance

        try:
            lance.dataset(self.location, storage_options=self.options)
        except (ValueError, FileNotFoundError, OSError):
            return False
        return True

    def create_if_missing(self) -> None:
        """An empty memory with its schema (the driver, before any actor looks up). Two runs creating the same
        memory at once: one creates it, the other finds it."""
        import lance

        if self.exists():
            return
        try:
            lance.write_dataset(SCHEMA.empty_table(), self.location, schema=SCHEMA, mode="create",
                                storage_options=self.options)
        except (ValueError, OSError):
            if not self.exists():
                raise

    def dataset(self, refresh: bool = False):
        import lance

        if self._dataset is None or refresh:
            self._dataset = lance.dataset(self.location, storage_options=self.options)
        return self._dataset

    def lookup(self, keys: list[str]) -> dict[str, dict]:
        """The entries of these keys that the memory holds: key -> {hyp_ids, score, nbest_scores, length_limited}.
        The memory is read at the version this object opened: a model actor does not see what other runs add
        meanwhile (this run's own segments reach it through the board)."""
        found: dict[str, dict] = {}
        wanted = sorted(set(keys))
        ds = self.dataset()
        for i in range(0, len(wanted), LOOKUP_CHUNK):
            # An Arrow expression, which the B-tree on `key` answers (twice as fast as a long SQL IN list).
            where = pc.field("key").isin(pa.array(wanted[i:i + LOOKUP_CHUNK], pa.string()))
            for row in ds.to_table(columns=["key", *OUTCOME], filter=where).to_pylist():
                found[row.pop("key")] = row
        return found

    def record(self, new: pa.Table, reused: list[str] = ()) -> dict[str, int]:
        """Insert `new` entries (MEMORY_SCHEMA rows) and move `last_used` of the `reused` keys to now:
        {"written": entries inserted, "refreshed": entries whose last use moved}. Idempotent: a shard commit
        that is retried writes nothing twice, and an entry a concurrent run inserted first is refreshed.
        A refresh rewrites only the `last_used` column (Lance's merge_insert with a partial source)."""
        written = refreshed = 0
        if new.num_rows:
            result = (self.dataset(refresh=True).merge_insert("key").when_matched_update_all()
                      .when_not_matched_insert_all().conflict_retries(20)
                      .execute(new.select(SCHEMA.names).cast(SCHEMA)))
            written, refreshed = int(result["num_inserted_rows"]), int(result["num_updated_rows"])
        if reused:
            now = pa.array([datetime.now(UTC)] * len(reused), SCHEMA.field("last_used").type)
            result = (self.dataset(refresh=True).merge_insert("key").when_matched_update_all().conflict_retries(20)
                      .execute(pa.table({"key": pa.array(list(reused), pa.string()), "last_used": now})))
            refreshed += int(result["num_updated_rows"])
        self._dataset = None
        return {"written": written, "refreshed": refreshed}

    def index(self) -> None:
        """Bring the key index up to date: rows added since it was built are found without it, by a scan
        that grows with them. A B-tree on an empty memory is built once it has rows."""
        ds = self.dataset(refresh=True)
        if not ds.count_rows():
            return
        if not any(list(i.field_names) == ["key"] for i in ds.describe_indices()):
            ds.create_scalar_index("key", "BTREE")
        else:
            ds.optimize.optimize_indices()
        self._dataset = None

    def compact(self, unused_days: float | None, keep_versions_hours: float = 1.0) -> dict:
        """Drop entries no run has used for `unused_days` (None: keep all), merge small files, update the index
        and delete files of versions older than `keep_versions_hours` (a run that opened the memory before
        keeps reading its version meanwhile)."""
        ds = self.dataset(refresh=True)
        before = ds.count_rows()
        if unused_days is not None:
            cutoff = datetime.now(UTC) - timedelta(days=unused_days)
            ds.delete(f"last_used < timestamp '{cutoff.strftime('%Y-%m-%d %H:%M:%S')}'")
        ds = self.dataset(refresh=True)
        ds.optimize.compact_files()
        self.index()
        ds = self.dataset(refresh=True)
        ds.cleanup_old_versions(older_than=timedelta(hours=keep_versions_hours))
        return {"entries_before": before, "entries": self.dataset(refresh=True).count_rows(),
                "dropped": before - self.dataset().count_rows(), "version": self.dataset().version}


def memory_entries(parts: pa.Table, fingerprint: str, source_column: str, languages) -> tuple[pa.Table, list[str]]:
    """What a shard's part files add to the memory: entries for the segments decoded in this run (one per key,
    `last_used` now), and the keys of those taken from it (to refresh). Rows that copied an identical segment
    of this run (`duplicate`) add nothing the decoded one does not."""
    if MEMORY_COLUMN not in parts.column_names or not parts.num_rows:
        return SCHEMA.empty_table(), []
    memo = parts.column(MEMORY_COLUMN)
    reuse = pc.struct_field(memo, "reuse")
    reused = sorted(set(pc.struct_field(memo, "key").filter(pc.equal(reuse, REUSE_MEMORY)).to_pylist()))
    rows = parts.filter(pc.fill_null(pc.equal(reuse, REUSE_DECODED), False))
    memo = rows.column(MEMORY_COLUMN).combine_chunks()
    sources, targets = languages.of_rows(rows)
    table = pa.table({
        "key": pc.struct_field(memo, "key"),
        "fingerprint": pa.array([fingerprint] * rows.num_rows, pa.string()),
        "source_lang": pa.array(sources, pa.string()), "target_lang": pa.array(targets, pa.string()),
        "source": rows.column(source_column).cast(pa.string()),
        "translation": rows.column("translation"),
        **{name: pc.struct_field(memo, name) for name in OUTCOME},
        "last_used": pa.array([datetime.now(UTC)] * rows.num_rows, SCHEMA.field("last_used").type),
    })
    return table.take(_first_of_each(table.column("key"))).cast(SCHEMA), reused


def _first_of_each(keys: pa.ChunkedArray) -> pa.Array:
    """Row indices of each key's first row."""
    seen: dict = {}
    for i, k in enumerate(keys.to_pylist()):
        seen.setdefault(k, i)
    return pa.array(sorted(seen.values()), pa.int64())
