"""URIs to filesystems: the one place that turns `s3://...`, `gs://...`, `file://...` or a local path
into an fsspec filesystem and a path on it.

Models, tokenizers and the data pipeline all read and write through here, so
storage options (endpoints, credentials) are handled alike everywhere.
"""

from __future__ import annotations

import json

import fsspec

from model.errors import CheckpointError


def resolve(uri: str, storage_options: dict | None = None):
    """(fsspec filesystem, path without protocol or trailing slash) for a URI."""
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    return fs, path.rstrip("/") or path


def protocols(fs) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def is_local(fs) -> bool:
    """True for the local disk (where paths can be handed to tools that want a plain path)."""
    return "file" in protocols(fs)


def read_json(fs, root: str, name: str, where: str, required: bool = True) -> dict:
    """The JSON file `name` of a model directory (config.json, tokenizer_config.json, ...); one reader for
    every format. CheckpointError "<where>: ..." for a missing (when `required`) or malformed file; {} for a
    missing optional one."""
    try:
        raw = fs.cat_file(f"{root}/{name}")
    except FileNotFoundError:
        if required:
            raise CheckpointError(f"{where}: missing file {name}") from None
        return {}
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{where}: {name} is not valid JSON ({e})") from None
