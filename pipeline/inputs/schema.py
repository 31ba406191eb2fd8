"""What an input shard's schema must be, checked from its footer while planning (issue 31).

A schema the pipeline cannot work with used to pass planning and fail later: a list or struct id
with a traceback, a `translation` input column at commit ("Field exists 2 times"), every run again.
Each check here raises an InputError of one line naming the file, the column and what to do, before
anything is written.
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.inputs.text_columns import is_text_type
from pipeline.io import InputError

RENAME_FLAG = "--rename-colliding-columns"


def check_shard_schema(where: str, schema: pa.Schema, id_column: str, source_column: str,
                       reference_column: str, required: tuple[str, ...] = ()) -> None:
    """The id and source columns (and the `required` ones) exist and have types the job can use."""
    for column in (id_column, source_column, *required):
        if column not in schema.names:
            raise InputError(f"{where}: missing column {column!r} (columns: {schema.names})")
    kind = schema.field(id_column).type
    value = kind.value_type if pa.types.is_dictionary(kind) else kind
    # Rows are matched by id in sets and hash tables: a list or a struct cannot be one.
    if pa.types.is_nested(value) or pa.types.is_null(value):
        raise InputError(f"{where}: column {id_column!r} holds {kind}; ids must be strings or integers (scalar "
                         "values)")
    for column, what in ((source_column, "the source"), (reference_column, "references")):
        if column in schema.names and not is_text_type(schema.field(column).type):
            raise InputError(f"{where}: column {column!r} holds {schema.field(column).type}; {what} must be text "
                             "(string, or binary holding UTF-8)")


def colliding_renames(where: str, schema: pa.Schema, reserved: frozenset[str], prefix: str,
                      keep: tuple[str, ...] = ()) -> dict[str, str]:
    """New names (`prefix` + name) for the input columns named like a column the job adds (`reserved`).

    Without a prefix such a column is refused: it would be written twice. Columns in `keep` (the
    language columns, which the stages read by the name given in their flags) cannot be renamed.
    """
    clashes = [name for name in schema.names if name in reserved]
    if not clashes:
        return {}
    for name in clashes:
        if name in keep:
            raise InputError(f"{where}: language column {name!r} is named like a column the job writes; rename it "
                             "in the input")
    if not prefix:
        return _refuse(where, clashes)
    renamed = {name: prefix + name for name in clashes}
    for old, new in renamed.items():
        if new in schema.names or new in reserved:
            raise InputError(f"{where}: column {old!r} cannot become {new!r}, a name that is taken; choose another "
                             f"{RENAME_FLAG} prefix")
    return renamed


def _refuse(where: str, clashes: list[str]) -> dict[str, str]:
    first = clashes[0]
    others = f" (and {', '.join(map(repr, clashes[1:]))})" if clashes[1:] else ""
    raise InputError(f"{where}: input column {first!r}{others} is named like a column the job writes; pass "
                     f"{RENAME_FLAG} PREFIX to keep it as PREFIX{first} (e.g. {RENAME_FLAG} prev_), or leave it "
                     "out of the input")
