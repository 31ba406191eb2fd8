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
import typing
from typing import Any

from model.config_fields import from_leaf_values, leaf_fields, redacted


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


def build_parser(cls, description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description or (cls.__doc__ or "").strip(),
        formatter_class=_HelpFormatter,
    )
    for _, f, tp in leaf_fields(cls):
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
    """The config from parsed flags. A list flag not given is None (argparse appends to its default
    otherwise): it takes the field's default list."""
    values = dict(args)
    for _, f, _ in leaf_fields(cls):
        if values[f.name] is None and f.default_factory is not dataclasses.MISSING:
            values[f.name] = f.default_factory()
    return from_leaf_values(cls, values)


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
