"""Command-line flags generated from a job's config dataclass.

Every job has one frozen dataclass; its fields are the flags (`max_tokens`
-> `--max-tokens`), its defaults are the defaults, and each field's
`metadata["help"]` is the help string. A field holding a library config
(the translation job's `DecodeConfig`) contributes that config's fields as
flags, so a setting is declared once, where it is used. The resolved config
is printed at start and stored with every output, with secrets redacted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from typing import Any

from model.config_fields import redacted


def _base_type(tp):
    """Unwrap Optional[X] / X | None to X."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _json_object(text: str) -> dict:
    """A JSON object flag's value. On error, argparse prints the value it was given ("invalid loads value:
    '{...}'"): --storage-options holds credentials, so the error says what is wrong and where, never the text."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); "
                                         "the value is not shown, it may hold secrets") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got a JSON {type(value).__name__}; the value is "
                                         "not shown, it may hold secrets")
    return value


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except empty ones ('', [], {}) which say nothing."""

    def _get_help_string(self, action):
        if action.default in ("", [], {}, None):
            return action.help
        return super()._get_help_string(action)


def _is_config(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _leaf_fields(cls):
    """(field, type) of every flag of `cls`, nested config dataclasses expanded in place."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = _base_type(hints[f.name])
        if _is_config(tp):
            yield from _leaf_fields(tp)
        else:
            yield f, tp


def build_parser(cls, description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description or (cls.__doc__ or "").strip(),
        formatter_class=_HelpFormatter,
    )
    for f, tp in _leaf_fields(cls):
        # A field may name its flag (metadata "flag") when its natural name is a Python keyword.
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        kw: dict[str, Any] = {"help": f.metadata.get("help", " ") or " ", "dest": f.name}
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        if f.default is not dataclasses.MISSING:
            kw["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kw["default"] = f.default_factory()
        else:
            kw["required"] = True
        origin = typing.get_origin(tp)
        if tp is bool:
            # --flag, --no-flag, or --flag=false
            kw.update(nargs="?", const=True, type=_bool, metavar="BOOL")
            parser.add_argument(flag, **kw)
            parser.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                                help=argparse.SUPPRESS)
        elif origin is list:
            (item,) = typing.get_args(tp)
            parser.add_argument(flag, type=item, action="append", **{**kw, "default": None})
        elif tp is dict or origin is dict:
            parser.add_argument(flag, type=_json_object, metavar="JSON", **kw)
        else:
            parser.add_argument(flag, type=tp, **kw)
    return parser


def _build(cls, args: dict):
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        tp = _base_type(hints[f.name])
        if _is_config(tp):
            values[f.name] = _build(tp, args)
            continue
        value = args[f.name]
        if value is None and f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        values[f.name] = value
    return cls(**values)


def parse_config(cls, argv: list[str] | None = None, description: str | None = None):
    """Parse argv into `cls`; list flags given on the command line replace the default list."""
    args = vars(build_parser(cls, description).parse_args(sys.argv[1:] if argv is None else argv))
    try:
        return _build(cls, args)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None


def with_absolute_paths(cfg, *names: str):
    """Replace local relative paths in the named fields by absolute ones (Ray workers run elsewhere)."""
    from pipeline.io import absolute_uri

    return dataclasses.replace(cfg, **{n: absolute_uri(getattr(cfg, n)) for n in names})


def print_config(cfg) -> None:
    print(f"[{type(cfg).__name__}] " + json.dumps(redacted(cfg), sort_keys=True), flush=True)
