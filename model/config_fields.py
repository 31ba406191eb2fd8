"""Config dataclass fields that carry their own command-line help.

Library configs (`DecodeConfig`, the pipeline's settings) and job configs are
plain frozen dataclasses. A field made with `arg` records its help string (and
argparse extras such as `choices`) in its metadata, so a job's flags can be
generated from its config, nested library configs included, and every
setting is declared exactly once.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def arg(default: Any = dataclasses.MISSING, help: str = "", **extra) -> Any:  # noqa: A002
    """A dataclass field with a help string (and optional argparse extras such as choices).

    A dataclass instance as default becomes a nested config: its own fields are flags too.
    """
    metadata = {"help": help, **extra}
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=metadata)
    if dataclasses.is_dataclass(default):
        value = default
        return dataclasses.field(default_factory=lambda: dataclasses.replace(value), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def leaf_values(cfg) -> dict[str, Any]:
    """Every setting of a (possibly nested) config dataclass by its field name, nesting flattened.

    Field names are unique across the nesting (they are the flag names), so the result is flat.
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            inner = leaf_values(value)
            clash = set(inner) & set(out)
            if clash:
                raise ValueError(f"{type(cfg).__name__}: settings {sorted(clash)} are declared twice")
            out.update(inner)
        else:
            out[f.name] = value
    return out


SECRET_FIELDS = ("storage_options",)


def redacted(cfg) -> dict:
    """The config as a dict, safe to print and store: secrets replaced by their keys only."""
    out = dataclasses.asdict(cfg)
    for name in SECRET_FIELDS:
        if out.get(name):
            out[name] = {k: "***" for k in out[name]}
    return out
