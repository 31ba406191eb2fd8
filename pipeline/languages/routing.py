"""Routing rows to models by language (`--model-for LANG=URI`, repeatable; `--model` takes the rest).

Route 0 is `--model`; route k (k >= 1) is the k-th `--model-for`, which takes the rows whose language (their
`--source-lang-column` value, else the identified one) is its LANG. Every other row, unidentified ones
included, goes to route 0, whose model then decides it as any run does (pipeline/languages/decide.py): a
model that declares its source language marks the others unsupported_language.

In the pipeline each route has its own model actor pool, one after the other in the chain
(pipeline/plan.py): a pool decodes the rows of its route and passes the others on untouched. That keeps
one stream of rows, so every input id still reaches the write stage exactly once and shards commit as
before, with no second read of the input and no union of streams; rows of other routes cost a pool only
their transfer. The CPU stages around the pools (tokenize, detokenize) hold every route's tokenizer and
treat each row with its own route's (`by_route`).

Pools are sized by each route's share of the work, estimated by the driver from a sample of the input's
rows (`pool_sizes`): every route gets one actor, and the rest go by share (largest remainders).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from pipeline.columns import ROUTE
from pipeline.languages.detect import normalise_code


def parse_model_for(items: list[str]) -> tuple[tuple[str, str], ...]:
    """["de=s3://m/opus-mt-de-en", ...] -> (("de", "s3://m/opus-mt-de-en"), ...); ValueError naming a bad one."""
    out: list[tuple[str, str]] = []
    for item in items:
        lang, sep, uri = item.partition("=")
        lang = normalise_code(lang)
        if not sep or not lang or not uri.strip():
            raise ValueError(f"--model-for {item!r}: expected LANG=URI, e.g. de=s3://bucket/models/opus-mt-de-en")
        if lang in (x for x, _ in out):
            raise ValueError(f"--model-for: two models for {lang!r}")
        out.append((lang, uri.strip()))
    return tuple(out)


@dataclass(frozen=True)
class Routes:
    """The language of each route >= 1 (route 0, --model, takes every other row)."""

    languages: tuple[str, ...] = ()

    def __len__(self) -> int:
        return 1 + len(self.languages)

    def of(self, langs: list[str]) -> list[int]:
        index = {lang: k + 1 for k, lang in enumerate(self.languages)}
        return [index.get(normalise_code(lang) if lang else "", 0) for lang in langs]


def route_indices(table: pa.Table, route: int) -> list[int]:
    return [i for i, r in enumerate(table.column(ROUTE).to_pylist()) if r == route]


def by_route(table: pa.Table, stages: dict, routes: list[int]) -> pa.Table:
    """`stages[r]` applied to the rows of route r (`routes`: each row's), the results in the rows' order."""
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(routes):
        groups.setdefault(r, []).append(i)
    if len(groups) == 1:
        (r, _), = groups.items()
        return stages[r](table)
    parts, order = [], []
    for r, idx in sorted(groups.items()):
        parts.append(stages[r](table.take(pa.array(idx, pa.int64()))))
        order += idx
    merged = pa.concat_tables(parts, promote_options="permissive")
    position = [0] * len(order)
    for k, i in enumerate(order):
        position[i] = k
    return merged.take(pa.array(position, pa.int64()))


def merge_rows(table: pa.Table, rows: list[int], part: pa.Table, columns: list[str]) -> pa.Table:
    """`table` with `columns` taken from `part` at `rows` (part's row k is table's row rows[k]); a column that
    `table` lacks is added, null elsewhere."""
    for name in columns:
        kind = part.schema.field(name).type
        values = table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows
        for k, v in zip(rows, part.column(name).to_pylist(), strict=True):
            values[k] = v
        column = pa.array(values, kind)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, column)
        else:
            table = table.append_column(name, column)
    return table


def pool_sizes(shares: list[float], actors: int) -> list[int]:
    """Actors per route: one each, the rest of `actors` split by share (largest remainders)."""
    sizes = [1] * len(shares)
    spare = actors - len(shares)
    total = sum(shares)
    if spare <= 0 or total <= 0:
        return sizes
    exact = [spare * s / total for s in shares]
    floors = [int(x) for x in exact]
    left = spare - sum(floors)
    for k in sorted(range(len(shares)), key=lambda k: exact[k] - floors[k], reverse=True)[:left]:
        floors[k] += 1
    return [a + b for a, b in zip(sizes, floors, strict=True)]
