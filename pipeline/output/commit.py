"""Committing a shard: its part files (and kept rows) merged into one translation file in input order, with
its statistics (row counts, metric sufficient statistics); and the driver's count of finished shards."""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from dataclasses import dataclass, replace
from fractions import Fraction

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.columns import (
    FLAGS,
    SEG,
    STATUS,
)
from pipeline.documents import SENTENCES
from pipeline.inputs import (
    KEPT_FILE,
    Columns,
    Shard,
    decode_texts,
    input_version,
)
from pipeline.io import (
    remove,
    resolve,
    table_to_parquet_bytes,
    write_bytes_atomic,
)
from pipeline.languages import flag_counts
from pipeline.output.layout import DECODED_WITH, OutputLayout, part_files, read_shard_stats
from pipeline.scoring import MetricOptions, bleu_tokenize_for, make_metrics, sentence_stats
from pipeline.settings import LanguageChoice


@dataclass(frozen=True)
class FlagSpec:
    """What the commit needs to flag rows (--quality-flags): the run's LanguageChoice (each row's target
    language: --target-lang / --target-lang-column, else the model's declared one) and the identifier's
    confidence threshold."""

    languages: LanguageChoice
    model_target: str = ""
    min_confidence: float = 0.3

    def of_rows(self, table: pa.Table, source_column: str) -> list[list[str]]:
        from pipeline.languages import flag_rows
        from pipeline.languages.stage import detector

        targets = [t or self.model_target for t in self.languages.of_rows(table)[1]]
        sources = decode_texts(table.column(source_column))[0]
        return flag_rows(sources, table.column("translation").to_pylist(), table.column(STATUS).to_pylist(),
                         targets, detector(self.min_confidence))


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


def status_counts(table: pa.Table) -> dict[str, int]:
    counts = pc.value_counts(table.column(STATUS)).to_pylist() if table.num_rows else []
    return {c["values"]: int(c["counts"]) for c in counts}


def commit_shard(shard: Shard, input_uri: str, output_uri: str, columns: Columns, added: list[pa.Field],
                 metrics: tuple[str, ...], metric_options: MetricOptions, storage_options: dict,
                 unit=SENTENCES, languages=None, pair_bleu_tokenize: str = "auto", memory=None,
                 flags: FlagSpec | None = None) -> dict:
    """Merge a shard's kept rows and parts into translations/<shard> in input order, score it, write its stats.

    Checks that every input row is there exactly once (in document mode: every segment of every
    document) and that the input file is still the version the run planned with; on a mismatch the
    parts stay for the next run and the error names the shard. The stats record that version.

    `memory` (a ReuseSpec with a memory, and the run's LanguageChoice): the shard's new translations are
    written to the translation memory, and its reused ones refreshed, before the stats mark it committed.

    `flags` (--quality-flags): each row's quality flags, computed here, on the whole shard, because the
    length_ratio rule measures the usual ratio on the shard's own rows (pipeline/languages/flags.py).
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
    schema = pa.schema([*input_schema, *(f for f in added if f.name != FLAGS)])
    merged, decoded_with = _merge(shard.name, out_fs, parts_dir, inputs, schema, columns, unit)
    stats = {"shard": shard.name, "sentences": merged.num_rows, "status": status_counts(merged),
             "decoded_with": dict(decoded_with)}
    if flags is not None:
        merged = merged.append_column(FLAGS, pa.array(flags.of_rows(merged, columns.source), pa.list_(pa.string())))
        stats["flags"] = flag_counts(merged.column(FLAGS).to_pylist())
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
    # The translations first, then the memory, then the stats that mark the shard committed (with this input
    # version), then the parts: a commit killed in between is done again by the next run from the same parts
    # (writing the memory twice writes nothing twice).
    write_bytes_atomic(out_fs, layout.translation(shard.name), table_to_parquet_bytes(merged))
    stats.update(_record_memory(out_fs, parts_dir, columns, memory))
    write_bytes_atomic(out_fs, layout.stats(shard.name), json.dumps(stats, sort_keys=True).encode())
    if out_fs.exists(parts_dir):
        remove(out_fs, parts_dir)
    return stats


def _record_memory(fs, parts_dir: str, columns: Columns, memory) -> dict[str, int]:
    """How the shard's rows decoded in this run were had: `duplicate_segments` (copied from an identical
    segment of the run); with a memory also `memory`: {"hits", "misses", "written", "refreshed"} (rows
    taken from it, rows looked up in vain, new entries written, entries whose last use was refreshed)."""
    from pipeline.memory import MEMORY_COLUMN, REUSE_DUPLICATE, REUSE_MEMORY

    tables = []
    for path in part_files(fs, parts_dir, kept=False):
        with fs.open(path, "rb") as fh:
            table = pq.read_table(fh)
        if MEMORY_COLUMN in table.column_names:
            tables.append(table)
    if not tables:
        return {}
    parts = pa.concat_tables(tables, promote_options="default")
    first: dict = {}  # a row in two parts (a retried write) counts once
    row_keys = [parts.column(c).to_pylist() for c in (columns.id, SEG) if c in parts.column_names]
    for i, key in enumerate(zip(*row_keys, strict=True)):
        first.setdefault(key, i)
    parts = parts.take(pa.array(sorted(first.values()), pa.int64()))
    reuse = Counter(pc.struct_field(parts.column(MEMORY_COLUMN), "reuse").to_pylist())
    out: dict = {"duplicate_segments": reuse[REUSE_DUPLICATE]}
    if memory is not None:
        from pipeline.memory import TranslationMemory, memory_entries

        spec, languages = memory
        new, reused = memory_entries(parts, spec.fingerprint, columns.source, languages)
        looked_up = sum(n for how, n in reuse.items() if how is not None)
        out["memory"] = {"hits": reuse[REUSE_MEMORY], "misses": looked_up - reuse[REUSE_MEMORY]}
        try:
            out["memory"].update(TranslationMemory(spec.memory_uri, spec.storage_options).record(new, reused))
        except Exception as e:  # noqa: BLE001  (the shard's translations are right: commit them, say what failed)
            out["memory"].update(written=0, refreshed=0, error=f"{type(e).__name__}: {e}")
    return out


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
        if FLAGS in part.column_names:
            entry["flags"] = flag_counts(part.column(FLAGS).to_pylist())
        if scored is not None:
            options = replace(metric_options, bleu_tokenize=tokenize)
            objs = make_metrics(options)
            hyps, refs = ([texts[i] for i in idx] for texts in scored)
            entry["null_references"] = part.column(reference).null_count
            entry["metrics"] = {m: sentence_stats(objs[m], hyps, [refs]).sum(0).tolist() for m in metrics}
        out[pair] = entry
    return out
