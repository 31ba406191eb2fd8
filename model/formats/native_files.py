"""The files of our checkpoint directories, without torch: config.json, hashes, the tokenizer.

What CPU-only stages need (the tokenize and detokenize actors, the driver's planning) lives here,
so those processes never import torch (~200 MB and seconds of start-up each). Weights and models
are in model/formats/native.py.
"""

from __future__ import annotations

import hashlib

from model.errors import CheckpointError
from model.storage import read_json, resolve
from model.tokenizers import tokenizer_from_files

FORMAT = "nmt-batch-checkpoint"
VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(fs, root: str, name: str, uri: str) -> bytes:
    try:
        return fs.cat_file(f"{root}/{name}")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {uri}: missing file {name}") from None


def read_config(uri: str, storage_options: dict | None = None) -> dict:
    fs, root = resolve(uri, storage_options)
    config = read_json(fs, root, CONFIG, f"checkpoint {uri}")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {uri}: {CONFIG} is not an {FORMAT} config")
    for key in ("arch", "model", "tokenizer", "files"):
        if key not in config:
            raise CheckpointError(f"checkpoint {uri}: {CONFIG} lacks the {key!r} field")
    return config


def read_verified(fs, root: str, name: str, config: dict, uri: str) -> bytes:
    data = _read(fs, root, name, uri)
    expected = config["files"].get(name)
    if expected is None:
        raise CheckpointError(f"checkpoint {uri}: {CONFIG} records no hash for {name}")
    if sha256(data) != expected:
        raise CheckpointError(f"checkpoint {uri}: {name} does not match its sha256 in {CONFIG} (tampered or truncated)")
    return data


def load_native_tokenizer(fs, root: str, config: dict, uri: str):
    try:
        return tokenizer_from_files(config["tokenizer"], lambda name: read_verified(fs, root, name, config, uri))
    except CheckpointError:
        raise
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {uri}: malformed tokenizer entry in {CONFIG} ({e})") from None
    except (RuntimeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {uri}: bad SentencePiece model ({e})") from None


def load_tokenizer_only(uri: str, storage_options: dict | None = None):
    """The checkpoint's tokenizer without its weights (for CPU tokenize/detokenize stages)."""
    config = read_config(uri, storage_options)
    fs, root = resolve(uri, storage_options)
    return load_native_tokenizer(fs, root, config, uri)
