"""Input shards, the output layout, resume state and per-shard commits.

Output layout under --output:
    translations/<shard>   one Parquet file per input shard, same relative name, rows in input order
    _parts/<shard>/        part files written while translating (removed once the shard is committed), and
                           kept.parquet: rows of a committed output whose input changed since (pipeline/resume.py)
    _stats/<shard>.json    the committed shard's statistics (row counts, metric sufficient statistics) and
                           the version of the input file it was made from
    _lease.json            the lease of the run writing the output (pipeline/lease.py)
    report.json, report.md

Every file is written under a temporary name and moved into place, so a file
that exists is complete. A shard is done when its translation file and its
stats exist and the stats record the very input version the shard has now
(pipeline/input_changes.py: size and ETag or mtime from the listing, and the
row count); a committed shard whose input changed is brought in line with it
(pipeline/resume.py: kept rows carried over, added and edited rows translated,
removed rows dropped). A shard with part files is partly done: the ids in its parts are
not translated again. Rows are keyed by id, so ids must be unique across the
input (checked before any decoding, and again when a shard is committed).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections import Counter
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.input_changes import (
    INPUT_VERSION,
    KEPT_FILE,
    InputVersion,
    input_version,
)
from pipeline.input_schema import check_shard_schema, colliding_renames
from pipeline.io import (
    InputError,
    list_parquet_files,
    read_footers,
    remove,
    resolve,
    table_to_parquet_bytes,
    write_bytes_atomic,
)
from pipeline.metrics import MetricOptions, bleu_tokenize_for, make_metrics, sentence_stats
from pipeline.run_stats import STATS_COLUMN, STATUS, RunStats
from pipeline.translate import INTERNAL
from pipeline.units import NSEG, SEG, SENTENCES

PATH = "path"  # the column Ray's read_parquet(include_paths=True) adds


@dataclass(frozen=True)
class Shard:
    path: str  # on the input filesystem, as Ray's `path` column shows it
    name: str  # relative to the input root: the name of its output file and report group
    rows: int
    version: InputVersion | None = None  # what the listing said when the run planned (None: not known)


@dataclass(frozen=True)
class Columns:
    """The input's columns as the pipeline and the output name them."""

    id: str
    source: str
    reference: str | None  # None when the input has no reference column
    # Input columns named like a column the job writes, renamed (--rename-colliding-columns):
    # ((name in the input, name in the pipeline and the output), ...). id/source/reference are the new names.
    renamed: tuple[tuple[str, str], ...] = ()

    def rename(self, data: pa.Table | pa.Schema) -> pa.Table | pa.Schema:
        """An input table (or schema) with its colliding columns renamed."""
        names = dict(self.renamed)
        if not names:
            return data
        if isinstance(data, pa.Schema):
            return pa.schema([f.with_name(names.get(f.name, f.name)) for f in data], metadata=data.metadata)
        return data.rename_columns([names.get(n, n) for n in data.column_names])

    def in_input(self, names: list[str] | None) -> list[str] | None:
        """Column names as the input files have them (None: every column)."""
        inverse = {new: old for old, new in self.renamed}
        return None if names is None else [inverse.get(n, n) for n in names]


def reserved_columns() -> frozenset[str]:
    """Every column the job adds to an input row at some stage: Ray's `path`, the stages' internal columns and
    the output columns with every option on (the model actors add `score` and `nbest_scores` to every row)."""
    every = output_fields(nbest=2, write_scores=True, write_segments=True)
    return frozenset([PATH, SEG, NSEG, *INTERNAL, *(f.name for f in every)])


def discover_shards(uri: str, id_column: str, source_column: str, reference_column: str,
                    storage_options: dict | None = None, required: tuple[str, ...] = (),
                    rename_prefix: str = "") -> tuple[object, list[Shard], Columns, pa.Schema]:
    """List input Parquet files and check every one's schema from its footer (pipeline/input_schema.py);
    `required`: other columns every shard must have (language columns); `rename_prefix`: the new names'
    prefix for input columns named like a column the job writes (refused without one). Each shard's version
    (pipeline/input_changes.py) comes from the same listing."""
    # fsspec keeps one filesystem per process and options, with its listings: a listing cached by an earlier
    # run in this process would give stale versions (s3fs keeps cached directories over a new `find`).
    resolve(uri, storage_options)[0].invalidate_cache()
    try:
        fs, files = list_parquet_files(uri, storage_options)
    except FileNotFoundError as e:
        raise InputError(str(e)) from None
    _, root = resolve(uri, storage_options)
    # A folder's shards are named from the folder; a file's or a glob's from their common folder.
    base = root if fs.isdir(root) else posixpath.commonpath([posixpath.dirname(f) for f in files])

    metas = read_footers(fs, files)
    schema = metas[0].schema.to_arrow_schema()
    reserved = reserved_columns()
    has_ref, renamed = [], {}
    for path, meta in zip(files, metas, strict=True):
        where, shard_schema = fs.unstrip_protocol(path), meta.schema.to_arrow_schema()
        check_shard_schema(where, shard_schema, id_column, source_column, reference_column, required)
        renamed |= colliding_renames(where, shard_schema, reserved, rename_prefix, keep=required)
        has_ref.append(reference_column in shard_schema.names)
        _check_no_null_ids(fs, path, meta, id_column)
    if any(has_ref) and not all(has_ref):
        missing = files[has_ref.index(False)]
        raise InputError(f"{fs.unstrip_protocol(missing)}: missing column {reference_column!r} that other shards have")
    shards = [Shard(f, posixpath.relpath(f, base), m.num_rows, input_version(fs, f, m.num_rows))
              for f, m in zip(files, metas, strict=True)]
    reference = renamed.get(reference_column, reference_column) if all(has_ref) else None
    columns = Columns(renamed.get(id_column, id_column), renamed.get(source_column, source_column), reference,
                      tuple(sorted(renamed.items())))
    return fs, shards, columns, schema


def _check_no_null_ids(fs, path: str, meta, id_column: str) -> None:
    """From the footer's statistics; where a writer kept none, from the id column itself."""
    # The Parquet column of the id (leaf columns of nested fields come before it, so not its Arrow index).
    idx = next(i for i in range(len(meta.schema)) if meta.schema.column(i).path == id_column)
    stats = [meta.row_group(rg).column(idx).statistics for rg in range(meta.num_row_groups)]
    if all(s is not None and s.has_null_count for s in stats):
        nulls = sum(s.null_count for s in stats)
    else:
        with fs.open(path, "rb") as fh:
            nulls = pq.read_table(fh, columns=[id_column]).column(0).null_count
    if nulls:
        raise InputError(f"{fs.unstrip_protocol(path)}: column {id_column!r} has {nulls} null ids; "
                         "every row needs an id to be tracked and resumed")


def check_unique_ids(fs, shards: list[Shard], id_column: str) -> None:
    """Every id exactly once in the whole input, checked before any work; InputError naming the id and file(s).

    Output rows are matched to input rows by id, so a repeated id could never be committed.
    Ids are read one column at a time, in parallel; across shards only 64-bit hashes are kept
    (8 bytes a row), and a hash collision is confirmed on the ids themselves before it is reported.
    """
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    def ids_of(shard: Shard) -> np.ndarray:
        with fs.open(shard.path, "rb") as fh:
            column = pq.read_table(fh, columns=[id_column]).column(0)
        values = column.to_numpy(zero_copy_only=False)
        unique = pc.unique(column)
        if len(unique) < len(column):
            counts = pc.value_counts(column)
            dup = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"].as_py()
            raise InputError(f"{fs.unstrip_protocol(shard.path)}: id {dup!r} appears more than once in column "
                             f"{id_column!r}; ids must be unique")
        return values

    def hashes_of(shard: Shard) -> np.ndarray:
        return pd.util.hash_array(ids_of(shard), categorize=False)

    with ThreadPoolExecutor(16) as pool:
        hashes = list(pool.map(hashes_of, shards))
    owner = np.concatenate([np.full(len(h), i, dtype=np.int32) for i, h in enumerate(hashes)]) if hashes else []
    flat = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    order = np.argsort(flat, kind="stable")
    same = np.nonzero(flat[order][1:] == flat[order][:-1])[0]
    if not len(same):
        return
    # Confirm on the ids themselves (a 64-bit hash collision is possible, if unlikely).
    by_shard: dict[int, np.ndarray] = {}
    offsets = np.cumsum([0] + [len(h) for h in hashes])
    for k in same:
        a, b = order[k], order[k + 1]
        sa, sb = int(owner[a]), int(owner[b])
        for i in (sa, sb):
            if i not in by_shard:
                by_shard[i] = ids_of(shards[i])
        ida, idb = by_shard[sa][a - offsets[sa]], by_shard[sb][b - offsets[sb]]
        if ida == idb:
            ida = ida.item() if isinstance(ida, np.generic) else ida  # 2, not np.int64(2)
            raise InputError(f"id {ida!r} appears in both {fs.unstrip_protocol(shards[sa].path)} and "
                             f"{fs.unstrip_protocol(shards[sb].path)} (column {id_column!r}); ids must be "
                             "unique across the input")


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
ADDED_LATER = {"no_repeat_ngram_size": 0, "model_files": ANY_VALUE}
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


def make_drop_done(id_column: str, done: dict[str, set]):
    """Ray Data stage on resume: drop rows whose (shard path, id) is already in a part file."""

    def drop_done(table: pa.Table) -> pa.Table:
        paths = table.column(PATH).to_pylist()
        ids = table.column(id_column).to_pylist()
        keep = [i not in done.get(p, ()) for p, i in zip(paths, ids, strict=True)]
        return table.filter(pa.array(keep, pa.bool_()))

    return drop_done


SHARD_COLUMN = "shard"  # the write stage's output, beside STATS_COLUMN: the part file's shard
ROWS_DONE_COLUMN = "rows_done"  # ... and how many of its input rows the part finishes ("n" or "n/d")


DECODED_WITH = b"nmt_batch.decoded_with"  # part file metadata: the precision its rows were decoded in


def write_parts(table: pa.Table, output_uri: str, shard_names: dict[str, str], id_column: str,
                storage_options: dict, unit=SENTENCES, decoded_with: str = "",
                input_versions: dict[str, bytes] | None = None) -> pa.Table:
    """Ray Data stage: write each shard's rows of this batch as one part file; return, per part file,
    its run statistics, its shard and the input rows it finishes (`unit.rows_done`).

    Part names are a hash of the ids they hold: a retried task rewrites the same
    file instead of adding a duplicate. Each part records the precision its rows were decoded in
    (`decoded_with`): a shard finished by a later run may hold rows of two (--precision auto on
    other hardware), and the report counts them. Each also records the version of the input file its
    rows were read from (`input_versions`: input path -> InputVersion.key()), so that a later run can tell
    parts of another version of the input.
    """
    fs, root = resolve(output_uri, storage_options)
    layout = OutputLayout(root)
    written, names, done = [], [], []
    paths = table.column(PATH)
    for path in pc.unique(paths).to_pylist():
        rows = table.filter(pc.equal(paths, path))
        name = shard_names[path]
        # Named by the rows they hold (ids, and segment indices in document mode, where the segments
        # of one document can arrive in several batches): a retried task rewrites the same file.
        keys = [rows.column(id_column).to_pylist()] + ([rows.column(SEG).to_pylist()] if SEG in rows.column_names
                                                       else [])
        digest = hashlib.sha1("\n".join(map(str, zip(*keys, strict=True))).encode()).hexdigest()[:20]
        out = rows.drop_columns([c for c in (PATH, *INTERNAL) if c in rows.column_names])
        metadata = {**(out.schema.metadata or {}), DECODED_WITH: decoded_with.encode()}
        if input_versions and path in input_versions:
            metadata[INPUT_VERSION] = input_versions[path]
        out = out.replace_schema_metadata(metadata)
        write_bytes_atomic(fs, f"{layout.parts(name)}/part-{digest}.parquet", table_to_parquet_bytes(out))
        written.append(RunStats.of_rows(rows).to_json())
        names.append(name)
        done.append(str(unit.rows_done(rows)))
    return pa.table({STATS_COLUMN: pa.array(written, pa.string()), SHARD_COLUMN: pa.array(names, pa.string()),
                     ROWS_DONE_COLUMN: pa.array(done, pa.string())})


class ShardProgress:
    """Which shards have every row this run translates in part files, from the write stage's outputs.

    The driver commits such a shard at once, while the actors decode the others, instead of
    committing every shard after the last batch. Ray Data hands the driver each write task's
    output once (a retried task's replaces the failed one's), so the count is exact; a commit
    that still finds rows missing fails harmlessly and is retried after the pipeline.
    """

    def __init__(self, pending: dict[str, int]):
        """pending: shard name -> input rows this run translates (its rows less those done before)."""
        self.left = {name: Fraction(n) for name, n in pending.items()}

    def complete(self) -> list[str]:
        """The shards with nothing left to translate."""
        return [name for name, n in self.left.items() if n == 0]

    def add(self, shard: str, rows_done: str) -> bool:
        """Count one part file; True when it is the one that completes its shard."""
        before = self.left[shard]
        self.left[shard] = before - Fraction(rows_done)
        return before > 0 and self.left[shard] == 0


def output_fields(nbest: int, write_scores: bool, write_segments: bool = False) -> list[pa.Field]:
    """Columns the translation job adds to the input's."""
    fields = [pa.field("translation", pa.string()), pa.field(STATUS, pa.string())]
    if write_scores or nbest > 1:
        fields.append(pa.field("score", pa.float64()))
    if nbest > 1:
        fields += [pa.field("nbest_scores", pa.list_(pa.float64())), pa.field("nbest", pa.list_(pa.string()))]
    if write_segments:
        fields += [pa.field("source_segments", pa.list_(pa.string())),
                   pa.field("target_segments", pa.list_(pa.string()))]
    return fields


def status_counts(table: pa.Table) -> dict[str, int]:
    counts = pc.value_counts(table.column(STATUS)).to_pylist() if table.num_rows else []
    return {c["values"]: int(c["counts"]) for c in counts}


def commit_shard(shard: Shard, input_uri: str, output_uri: str, columns: Columns, added: list[pa.Field],
                 metrics: tuple[str, ...], metric_options: MetricOptions, storage_options: dict,
                 unit=SENTENCES, languages=None, pair_bleu_tokenize: str = "auto") -> dict:
    """Merge a shard's kept rows and parts into translations/<shard> in input order, score it, write its stats.

    Checks that every input row is there exactly once (in document mode: every segment of every
    document) and that the input file is still the version the run planned with; on a mismatch the
    parts stay for the next run and the error names the shard. The stats record that version.
    """
    in_fs, _ = resolve(input_uri, storage_options)
    out_fs, root = resolve(output_uri, storage_options)
    layout = OutputLayout(root)
    parts_dir = layout.parts(shard.name)
    if (not out_fs.exists(parts_dir) and out_fs.exists(layout.translation(shard.name))
            and out_fs.exists(layout.stats(shard.name))):
        # Committed already: this is a retry of a commit whose node was lost after it finished (Ray
        # re-runs a task whose worker died), or a commit started twice. Its parts are gone. (A commit of
        # another version of the input is not this one: a shard whose rows were all removed has no parts.)
        stats = read_shard_stats(out_fs, layout, shard)
        if shard.version is None or stats.get("input") == shard.version.as_dict():
            return stats
    _check_input_unchanged(in_fs, shard)
    with in_fs.open(shard.path, "rb") as fh:
        input_schema = columns.rename(pq.read_schema(fh))
        fh.seek(0)
        inputs = columns.rename(pq.read_table(fh, columns=columns.in_input(unit.input_columns(columns))))
    schema = pa.schema(list(input_schema) + added)
    merged, decoded_with = _merge(shard.name, out_fs, parts_dir, inputs, schema, columns, unit)
    stats = {"shard": shard.name, "sentences": merged.num_rows, "status": status_counts(merged),
             "decoded_with": dict(decoded_with)}
    if shard.version is not None:
        stats["input"] = shard.version.as_dict()
    if columns.reference and metrics:
        hyps, refs = unit.scored_texts(merged, columns.reference)
        stats["null_references"] = merged.column(columns.reference).null_count
        objs = make_metrics(metric_options)
        stats["metrics"] = {m: sentence_stats(objs[m], hyps, [refs]).sum(0).tolist() for m in metrics}
    if languages is not None:
        stats["pairs"] = pair_stats(merged, languages, columns.reference, metrics,
                                    replace(metric_options, bleu_tokenize=pair_bleu_tokenize), unit)
    # The translations first, then the stats that mark the shard committed (with this input version), then
    # the parts: a commit killed in between is done again by the next run from the same parts.
    write_bytes_atomic(out_fs, layout.translation(shard.name), table_to_parquet_bytes(merged))
    write_bytes_atomic(out_fs, layout.stats(shard.name), json.dumps(stats, sort_keys=True).encode())
    if out_fs.exists(parts_dir):
        remove(out_fs, parts_dir)
    return stats


def _plain_ids(table: pa.Table, id_column: str) -> pa.Table:
    """Dictionary-encoded ids as their values: rows are matched by id with pc.index_in, which compares plain
    arrays only (it refused a dictionary column on every commit)."""
    kind = table.schema.field(id_column).type
    if not pa.types.is_dictionary(kind):
        return table
    i = table.schema.get_field_index(id_column)
    return table.set_column(i, id_column, table.column(i).cast(kind.value_type))


def _check_input_unchanged(fs, shard: Shard) -> None:
    """The input file must still be the version the run planned with: the rows translated since were read
    from either version, and the next run sorts them out row by row (parts record their version)."""
    if shard.version is None:
        return
    fs.invalidate_cache(posixpath.dirname(shard.path))  # a listing cached by this worker process is stale
    if input_version(fs, shard.path, shard.rows) != shard.version:
        raise RuntimeError(f"shard {shard.name}: the input file changed while this run translated it; its "
                           "translated rows are kept, and a re-run brings the output in line with the input")


def _merge(shard_name: str, fs, parts_dir: str, inputs: pa.Table, schema: pa.Schema, columns: Columns, unit
           ) -> tuple[pa.Table, Counter]:
    """The shard's output rows, in input order, from its kept file (rows carried over from an earlier commit,
    when the input changed) and its part files; and how many rows were decoded in each precision."""
    inputs = _plain_ids(inputs, columns.id)
    kept, tables, precision_of = None, [], {}
    for path in part_files(fs, parts_dir, kept=True):
        with fs.open(path, "rb") as fh:
            table = pq.read_table(fh)
        decoded = (table.schema.metadata or {}).get(DECODED_WITH, b"").decode() or "unrecorded"
        if posixpath.basename(path) == KEPT_FILE:
            kept, kept_decoded = _plain_ids(table, columns.id), decoded
            continue
        tables.append(_plain_ids(table, columns.id))
        # Per row key (id, and segment in document mode), so a row in two parts (a retried write) counts once.
        keys = [tables[-1].column(c).to_pylist() for c in unit.part_columns(columns.id)[:2]
                if c in table.column_names]
        precision_of.update(dict.fromkeys(zip(*keys, strict=True), decoded))
    merged = pa.concat_tables(tables, promote_options="default") if tables else unit.empty_parts(schema, columns.id)
    pending = inputs
    if kept is not None:  # the other rows come from the parts; a kept row left in a part too is kept once
        kept_ids = kept.column(columns.id)
        pending = inputs.filter(pc.invert(pc.is_in(inputs.column(columns.id), value_set=kept_ids)))
        merged = merged.filter(pc.invert(pc.is_in(merged.column(columns.id), value_set=kept_ids)))
        dropped = set(kept_ids.to_pylist())
        precision_of = {key: p for key, p in precision_of.items() if key[0] not in dropped}
    decoded_with = Counter(precision_of.values())
    merged = unit.assemble(shard_name, pending, merged, columns.id, columns.source).select(schema.names).cast(schema)
    if kept is not None:
        decoded_with[kept_decoded] += kept.num_rows
        merged = pa.concat_tables([kept.select(schema.names).cast(schema), merged])
        positions = pc.index_in(merged.column(columns.id), value_set=inputs.column(columns.id))
        if positions.null_count or merged.num_rows != inputs.num_rows:
            fs.rm_file(f"{parts_dir}/{KEPT_FILE}")  # the next run compares the committed output with the input again
            raise RuntimeError(f"shard {shard_name}: the kept rows do not match the input ({merged.num_rows} rows "
                               f"for {inputs.num_rows}); a re-run compares them again")
        merged = merged.take(pc.sort_indices(positions))
    return merged, decoded_with


def pair_stats(merged: pa.Table, languages, reference: str | None, metrics: tuple[str, ...],
               metric_options: MetricOptions, unit) -> dict[str, dict]:
    """Statistics per "source-target" language pair; BLEU tokenized as the target language asks
    (metric_options.bleu_tokenize "auto": sacreBLEU's recommendation per language)."""
    sources, targets = languages.of_rows(merged)
    rows: dict[str, list[int]] = {}
    for i, pair in enumerate(zip(sources, targets, strict=True)):
        rows.setdefault("-".join(pair), []).append(i)
    scored = unit.scored_texts(merged, reference) if reference and metrics else None
    out = {}
    for pair, idx in sorted(rows.items()):
        part = merged.take(pa.array(idx, pa.int64()))
        tokenize = bleu_tokenize_for(targets[idx[0]], metric_options.bleu_tokenize)
        entry = {"sentences": len(idx), "status": status_counts(part), "target": targets[idx[0]],
                 "bleu_tokenize": tokenize}
        if scored is not None:
            options = replace(metric_options, bleu_tokenize=tokenize)
            objs = make_metrics(options)
            hyps, refs = ([texts[i] for i in idx] for texts in scored)
            entry["null_references"] = part.column(reference).null_count
            entry["metrics"] = {m: sentence_stats(objs[m], hyps, [refs]).sum(0).tolist() for m in metrics}
        out[pair] = entry
    return out


def read_shard_stats(fs, layout: OutputLayout, shard: Shard) -> dict:
    return json.loads(fs.cat_file(layout.stats(shard.name)))

