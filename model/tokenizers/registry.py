"""Tokenizers by kind: rebuild one from the files a checkpoint or tokenizer directory holds.

The registry is its own module, above the tokenizer kinds, so that no tokenizer module imports
another one back (the base SentencePiece module once held it and had to import the others lazily).
"""

from __future__ import annotations

import json

from model.storage import resolve
from model.tokenizers.m2m100 import FairseqMultilingualTokenizer
from model.tokenizers.marian import MarianTokenizer
from model.tokenizers.sentencepiece import Tokenizer


def _sentencepiece_from_files(layout: dict, read) -> Tokenizer:
    source = read(layout["source"])
    target = None if layout["target"] == layout["source"] else read(layout["target"])
    return Tokenizer(source, target)


def _marian_from_files(layout: dict, read):
    return MarianTokenizer.from_layout(layout, read)


def _fairseq_multilingual_from_files(layout: dict, read):
    return FairseqMultilingualTokenizer.from_layout(layout, read)


# Tokenizer kinds a checkpoint can hold, by the "type" of its layout (absent in older checkpoints).
TOKENIZER_KINDS = {"sentencepiece": _sentencepiece_from_files, "marian": _marian_from_files,
                   "m2m100": _fairseq_multilingual_from_files, "nllb": _fairseq_multilingual_from_files}


def tokenizer_from_files(layout: dict, read):
    """Rebuild a tokenizer from a layout written by its `files()`; `read(name) -> bytes` fetches a file."""
    kind = layout.get("type", "sentencepiece")
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"unknown tokenizer type {kind!r} (known: {', '.join(TOKENIZER_KINDS)})")
    return TOKENIZER_KINDS[kind](layout, read)


def save_tokenizer(tokenizer: Tokenizer, uri: str, info: dict | None = None,
                   storage_options: dict | None = None) -> None:
    """Write spm.model (joint) or source.spm + target.spm, then tokenizer.json naming them."""
    fs, root = resolve(uri, storage_options)
    fs.makedirs(root, exist_ok=True)
    files, layout = tokenizer.files()
    for name, data in files.items():
        fs.pipe_file(f"{root}/{name}", data)
    meta = {**(info or {}), **layout, "joint": tokenizer.joint,
            "source_vocab_size": tokenizer.src_vocab_size, "target_vocab_size": tokenizer.tgt_vocab_size}
    # Written last: a directory with tokenizer.json is complete.
    fs.pipe_file(f"{root}/tokenizer.json", json.dumps(meta, indent=2, sort_keys=True).encode())


def load_tokenizer_dir(uri: str, storage_options: dict | None = None) -> Tokenizer:
    """Load a directory written by `save_tokenizer` (or the train_tokenizer job)."""
    fs, root = resolve(uri, storage_options)
    try:
        info = json.loads(fs.cat_file(f"{root}/tokenizer.json"))
    except FileNotFoundError:
        raise FileNotFoundError(f"tokenizer not found: {uri.rstrip('/')}/tokenizer.json") from None
    return tokenizer_from_files(info, lambda name: fs.cat_file(f"{root}/{name}"))
