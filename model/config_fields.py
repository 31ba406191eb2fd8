"""Config dataclass fields that carry their own command-line help.

Library configs (`DecodeConfig`, the pipeline's settings) and job configs are
plain frozen dataclasses. A field made with `arg` records its help string (and
argparse extras such as `choices`) in its metadata, so a job's flags can be
generated from its config, nested library configs included, and every
setting is declared exactly once.
"""

from __future__ import annotations

import dataclasses
import types
import typing
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


def base_type(tp):
    """Unwrap Optional[X] / X | None to X."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(tp) if a is not type(None)][0]
    return tp


def is_config(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def leaf_fields(cls) -> list[tuple[tuple[str, ...], dataclasses.Field, Any]]:
    """(path, field, type) of every setting of the config class `cls`, nested config dataclasses expanded in
    place; `path` names the nested configs that lead to the field. The one walk over nested configs: a job's
    flags, their parsing and the resume fingerprint all come from it.

    Field names are unique across the nesting (they are the flag names): a name declared twice is an error.
    """
    leaves: list = []
    seen: set[str] = set()

    def walk(config_cls, path: tuple[str, ...]) -> None:
        hints = typing.get_type_hints(config_cls)
        for f in dataclasses.fields(config_cls):
            tp = base_type(hints[f.name])
            if is_config(tp):
                walk(tp, (*path, f.name))
                continue
            if f.name in seen:
                raise ValueError(f"{cls.__name__}: setting {f.name!r} is declared twice")
            seen.add(f.name)
            leaves.append((path, f, tp))

    walk(cls, ())
    return leaves


def leaf_values(cfg) -> dict[str, Any]:
    """Every setting of a (possibly nested) config by its field name, nesting flattened."""
    out: dict[str, Any] = {}
    for path, f, _ in leaf_fields(type(cfg)):
        holder = cfg
        for name in path:
            holder = getattr(holder, name)
        out[f.name] = getattr(holder, f.name)
    return out


def from_leaf_values(cls, values: dict[str, Any]):
    """`cls` built from every setting by its field name (`leaf_values` turned back), nested configs included."""
    nested: dict = {}
    for path, f, _ in leaf_fields(cls):
        holder = nested
        for name in path:
            holder = holder.setdefault(name, {})
        holder[f.name] = values[f.name]

    def build(config_cls, kwargs: dict):
        hints = typing.get_type_hints(config_cls)
        return config_cls(**{k: build(base_type(hints[k]), v) if is_config(base_type(hints[k])) else v
                             for k, v in kwargs.items()})

    return build(cls, nested)


SECRET_FIELDS = ("storage_options",)


def redacted(cfg) -> dict:
    """The config as a dict, safe to print and store: secrets replaced by their keys only."""
    out = dataclasses.asdict(cfg)
    for name in SECRET_FIELDS:
        if out.get(name):
            out[name] = {k: "***" for k in out[name]}
    return out
