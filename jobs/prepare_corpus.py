"""Parallel text -> sharded Parquet (id, source, reference, metadata columns) at any fsspec URI.

    python jobs/prepare_corpus.py --source train.en.gz --target train.de.gz --output s3://bucket/corpus/train

Inputs are read twice, streaming: a first pass checks that both sides are
valid UTF-8 and have the same number of lines (an error names both files and
both counts), a second pass writes shards into a hidden staging folder that is
moved into place at the end, so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import itertools
import json
import os
import posixpath
import sys
import uuid
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script

import pyarrow as pa  # noqa: E402

from jobs.cli import parse_config, print_config  # noqa: E402
from model.config_fields import arg  # noqa: E402
from model.storage import resolve  # noqa: E402
from pipeline.io import files_in, move, read_text_lines, remove, table_to_parquet_bytes, to_uri  # noqa: E402


@dataclass(frozen=True)
class PrepareConfig:
    """Convert parallel text into sharded Parquet with columns id, source, reference."""

    output: str = arg(help="output directory/prefix (any fsspec URI) for the Parquet shards")
    source: str = arg("", help="source-side text file (.gz allowed), one sentence per line")
    target: str = arg("", help="target-side text file aligned line by line with --source")
    tsv: str = arg("", help="instead of --source/--target: one TSV file source<TAB>target[<TAB>extra...]")
    tsv_columns: list[str] = arg([], help="names of the TSV columns after the first two (repeatable)")
    metadata: list[str] = arg([], help="constant column KEY=VALUE added to every row (repeatable)")
    rows_per_shard: int = arg(100_000, help="rows per Parquet shard")
    id_prefix: str = arg("", help="ids are '<prefix>-<line number>'; default: the source file name stem")
    drop_empty: bool = arg(False, help="drop pairs where either side is empty/whitespace (counted in the summary)")
    max_words: int = arg(0, help="drop pairs with more whitespace-separated words on either side (0: keep all)")
    overwrite: bool = arg(False, help="replace existing shards at --output")
    storage_options: dict = arg({}, help="JSON options for fsspec (e.g. endpoint_url); never logged")

    def __post_init__(self):
        if bool(self.tsv) == bool(self.source or self.target):
            raise ValueError("give either --source and --target, or --tsv")
        if not self.tsv and not (self.source and self.target):
            raise ValueError("--source and --target go together")
        if self.rows_per_shard < 1:
            raise ValueError("--rows-per-shard must be >= 1")
        for kv in self.metadata:
            if "=" not in kv:
                raise ValueError(f"--metadata expects KEY=VALUE, got {kv!r}")


def _stem(uri: str) -> str:
    name = posixpath.basename(uri.rstrip("/"))
    for ext in (".gz", ".tsv", ".txt"):
        name = name.removesuffix(ext)
    return name


def _rows(cfg: PrepareConfig):
    """Yield (source, reference, extras) per input line."""
    so = cfg.storage_options
    if cfg.tsv:
        width = 2 + len(cfg.tsv_columns)
        for lineno, line in enumerate(read_text_lines(cfg.tsv, so), start=1):
            fields = line.split("\t")
            if len(fields) != width:
                raise ValueError(f"{cfg.tsv}: line {lineno} has {len(fields)} tab-separated fields, expected {width}")
            yield fields[0], fields[1], fields[2:]
        return
    for src, tgt in zip(read_text_lines(cfg.source, so), read_text_lines(cfg.target, so), strict=True):
        yield src, tgt, []


def check_inputs(cfg: PrepareConfig) -> int:
    """First pass: UTF-8 everywhere, equal line counts. Returns the number of lines."""
    so = cfg.storage_options
    if cfg.tsv:
        return sum(1 for _ in _rows(cfg))
    n_src = sum(1 for _ in read_text_lines(cfg.source, so))
    n_tgt = sum(1 for _ in read_text_lines(cfg.target, so))
    if n_src != n_tgt:
        raise ValueError(f"misaligned inputs: {cfg.source} has {n_src} lines but {cfg.target} has {n_tgt}")
    return n_src


def drop_reason(src: str, tgt: str, cfg: PrepareConfig) -> str | None:
    if cfg.drop_empty and (not src.strip() or not tgt.strip()):
        return "empty_side"
    if cfg.max_words and max(len(src.split()), len(tgt.split())) > cfg.max_words:
        return "too_long"
    return None


def prepare(cfg: PrepareConfig) -> dict:
    lines = check_inputs(cfg)
    fs, out = resolve(cfg.output, cfg.storage_options)
    existing = files_in(fs, out, suffix=".parquet")  # by name: the folder's own name may hold glob characters
    if existing and not cfg.overwrite:
        raise FileExistsError(f"{cfg.output} already holds {len(existing)} Parquet files; pass --overwrite")
    prefix = cfg.id_prefix or _stem(cfg.tsv or cfg.source)
    constants = dict(kv.split("=", 1) for kv in cfg.metadata)
    extra_names = list(cfg.tsv_columns)
    staging = f"{out}/.staging-{uuid.uuid4().hex}"
    fs.makedirs(staging, exist_ok=True)
    stats = {"lines": lines, "rows": 0, "dropped": {"empty_side": 0, "too_long": 0},
             "empty_source": 0, "empty_reference": 0, "shards": 0}
    names = []
    try:
        rows = enumerate(_rows(cfg), start=1)
        while chunk := list(itertools.islice(rows, cfg.rows_per_shard)):
            cols: dict[str, list] = {"id": [], "source": [], "reference": [], **{n: [] for n in extra_names}}
            for lineno, (src, tgt, extras) in chunk:
                stats["empty_source"] += not src.strip()
                stats["empty_reference"] += not tgt.strip()
                reason = drop_reason(src, tgt, cfg)
                if reason:
                    stats["dropped"][reason] += 1
                    continue
                cols["id"].append(f"{prefix}-{lineno}")
                cols["source"].append(src)
                cols["reference"].append(tgt)
                for name, value in zip(extra_names, extras, strict=True):
                    cols[name].append(value)
            table = pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()})
            for key, value in constants.items():
                table = table.append_column(key, pa.array([value] * table.num_rows, pa.string()))
            name = f"part-{len(names):05d}.parquet"
            fs.pipe_file(f"{staging}/{name}", table_to_parquet_bytes(table))
            names.append(name)
            stats["rows"] += table.num_rows
        # Commit: old shards out, new shards in.
        for old in existing:
            remove(fs, old)
        for name in names:
            move(fs, f"{staging}/{name}", f"{out}/{name}")
    finally:
        if fs.exists(staging):
            remove(fs, staging)
    stats["shards"] = len(names)
    stats["output"] = to_uri(fs, out)
    return stats


def main(argv=None) -> int:
    cfg = parse_config(PrepareConfig, argv)
    print_config(cfg)
    try:
        stats = prepare(cfg)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    dropped = sum(stats["dropped"].values())
    print(f"wrote {stats['rows']} rows in {stats['shards']} shards to {stats['output']} "
          f"({dropped} dropped: {stats['dropped']})")
    print(json.dumps(stats, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
