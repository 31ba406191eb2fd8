"""Text columns as Python strings, whether the input stores them as strings or as UTF-8 bytes.

Older writers (and some Spark and Hive tables) store strings as Parquet `binary` without the UTF8
annotation, which Arrow reads as `binary`/`large_binary`. Such a source was read as bytes and every
row was taken for empty (issue 31): bytes are decoded here, and a row whose bytes are not UTF-8 is
flagged so that it gets a status of its own instead of a made-up translation.
"""

from __future__ import annotations

import pyarrow as pa


def is_text_type(kind: pa.DataType) -> bool:
    """Whether a column of this type can be read as text: strings, bytes holding UTF-8, a dictionary of
    either, or nulls only."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
            or pa.types.is_large_binary(kind) or pa.types.is_null(kind)
            or kind in (pa.string_view(), pa.binary_view()))


def decode_texts(column) -> tuple[list[str | None], list[bool]]:
    """(texts, invalid) of a text column: bytes decoded as UTF-8; where they are not UTF-8 the text is
    None and `invalid` is True."""
    values = column.to_pylist()
    texts: list[str | None] = []
    invalid = [False] * len(values)
    for i, value in enumerate(values):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                value, invalid[i] = None, True
        texts.append(value)
    return texts, invalid
