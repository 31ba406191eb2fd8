"""The tokenizer of Hugging Face Marian / OPUS-MT directories, as `transformers.MarianTokenizer` behaves.

Text goes through a SentencePiece model into *pieces* (source.spm for the source,
target.spm for the target); `vocab.json` (and `target_vocab.json` when the two sides
have separate vocabularies) maps pieces to model ids. SentencePiece's own ids are never
used: a piece missing from the vocabulary is `<unk>`. The id layout is Marian's:
`</s>` = 0, `<unk>` = 1, `<pad>` last, and decoding starts from the pad id
(`decoder_start_token_id`). A leading language code (`>>de<<`, multilingual OPUS-MT
targets) is kept as one piece. Only `</s>` is appended to the source; there is no BOS.

Same interface as `model.tokenizers.sentencepiece.Tokenizer`, so the pipeline needs no special case.
"""

from __future__ import annotations

import hashlib
import json

import sentencepiece as spm

from model.errors import CheckpointError
from model.storage import read_json
from model.tokenizers.sentencepiece import SENTENCE_END

SPIECE_UNDERLINE = "▁"
TOKENIZER_FILES = ("source.spm", "target.spm", "vocab.json")


def _processor(data: bytes, name: str) -> spm.SentencePieceProcessor:
    sp = spm.SentencePieceProcessor()
    try:
        sp.LoadFromSerializedProto(data)
    except RuntimeError as e:
        raise ValueError(f"{name} is not a SentencePiece model ({e})") from None
    return sp


def _vocab(data: bytes, name: str) -> dict[str, int]:
    try:
        vocab = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{name} is not valid JSON ({e})") from None
    if not isinstance(vocab, dict) or not all(isinstance(k, str) and isinstance(v, int) for k, v in vocab.items()):
        raise ValueError(f"{name} must map pieces to integer ids")
    return vocab


class MarianTokenizer:
    kind = "marian"
    needs_languages = False  # a multilingual OPUS-MT model takes an optional ">>lang<<" target token

    def __init__(self, files: dict[str, bytes], *, pad_id: int, eos_id: int, decoder_start_id: int,
                 unk_token: str = "<unk>", separate_vocabs: bool = False, model_max_length: int = 0):
        """files: source.spm, target.spm, vocab.json (+ target_vocab.json with separate vocabularies)."""
        self._files = dict(files)
        self.separate_vocabs = separate_vocabs
        self.source = _processor(files["source.spm"], "source.spm")
        self.target = _processor(files["target.spm"], "target.spm")
        self.source_vocab = _vocab(files["vocab.json"], "vocab.json")
        self.target_vocab = _vocab(files["target_vocab.json"], "target_vocab.json") if separate_vocabs \
            else self.source_vocab
        if unk_token not in self.source_vocab:
            raise ValueError(f"vocab.json has no {unk_token!r} entry")
        self.unk_id = self.source_vocab[unk_token]
        self.target_unk_id = self.target_vocab.get(unk_token, self.unk_id)
        self.pad_id, self.eos_id, self.bos_id = pad_id, eos_id, decoder_start_id
        self.target_pieces = {i: p for p, i in self.target_vocab.items()}
        # Never detokenized (transformers' skip_special_tokens): eos, pad, unk and language codes.
        self.special_target_ids = frozenset(
            {pad_id, eos_id, decoder_start_id, self.target_unk_id}
            | {i for p, i in self.target_vocab.items() if p in ("<pad>", "</s>", "<unk>")})
        self.model_max_length = model_max_length  # positions the model has; 0: no limit

    @property
    def src_vocab_size(self) -> int:
        return max(self.source_vocab.values()) + 1

    @property
    def tgt_vocab_size(self) -> int:
        return max(self.target_vocab.values()) + 1

    def _ids(self, text: str, sp: spm.SentencePieceProcessor, vocab: dict[str, int], unk: int) -> list[int]:
        code = []
        # A leading ">>xx<<" selects the target language of multilingual models: one piece, as transformers does.
        if text.startswith(">>") and (end := text.find("<<")) != -1:
            code, text = [text[: end + 2]], text[end + 2:]
        return [vocab.get(p, unk) for p in code + sp.encode(text, out_type=str)]

    def source_ids(self, texts) -> list[list[int]]:
        return [self._ids(t, self.source, self.source_vocab, self.unk_id) for t in texts]

    def encode_source(self, texts) -> list[list[int]]:
        return [ids + [self.eos_id] for ids in self.source_ids(texts)]

    def encode_target(self, texts) -> list[list[int]]:
        return [self._ids(t, self.target, self.target_vocab, self.target_unk_id) for t in texts]

    def decode_target(self, ids) -> list[str]:
        """transformers' `batch_decode(..., skip_special_tokens=True)` with the target SentencePiece model."""
        out = []
        for row in ids:
            pieces = [self.target_pieces.get(i, "") for i in row if i not in self.special_target_ids]
            text = self.target.decode_pieces([p for p in pieces if p])
            out.append(text.replace(SPIECE_UNDERLINE, " ").strip())
        return out

    def sentence_end_ids(self) -> frozenset[int]:
        return frozenset(i for p, i in self.source_vocab.items() if p.rstrip(SPIECE_UNDERLINE).endswith(SENTENCE_END))

    # Multilingual OPUS-MT models pick the target language with a ">>xx<<" token in front of the source.
    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted(p[2:-2] for p in self.source_vocab if p.startswith(">>") and p.endswith("<<")))

    @property
    def multilingual(self) -> bool:
        return bool(self.languages)

    def language_prefixes(self, source_lang: str | None, target_lang: str | None):
        """([>>target<<], []) for a multilingual model; the source language is not marked. None: unknown target.
        A bilingual model has one target language: `target_lang` names it and changes nothing."""
        if not target_lang or not self.multilingual:
            return [], []
        token = self.source_vocab.get(target_lang if target_lang.startswith(">>") else f">>{target_lang}<<")
        return None if token is None else ([token], [])

    def vocab_fingerprint(self) -> tuple[str, str]:
        def digest(*names):
            h = hashlib.sha256()
            for n in names:
                h.update(self._files[n])
            return h.hexdigest()

        return digest("source.spm", "vocab.json"), digest("target.spm", "target_vocab.json" if self.separate_vocabs
                                                          else "vocab.json")

    def files(self) -> tuple[dict[str, bytes], dict]:
        layout = {"type": self.kind, "pad_id": self.pad_id, "eos_id": self.eos_id, "decoder_start_id": self.bos_id,
                  "separate_vocabs": self.separate_vocabs, "model_max_length": self.model_max_length,
                  "files": sorted(self._files)}
        return dict(self._files), layout

    @classmethod
    def from_layout(cls, layout: dict, read) -> MarianTokenizer:
        return cls({name: read(name) for name in layout["files"]}, pad_id=layout["pad_id"], eos_id=layout["eos_id"],
                   decoder_start_id=layout["decoder_start_id"], separate_vocabs=layout["separate_vocabs"],
                   model_max_length=layout.get("model_max_length", 0))


def load_marian_tokenizer(fs, root: str, uri: str, hf: dict) -> MarianTokenizer:
    tok_config = read_json(fs, root, "tokenizer_config.json", uri, required=False)
    separate = bool(tok_config.get("separate_vocabs", False))
    files = {}
    for name in TOKENIZER_FILES + (("target_vocab.json",) if separate else ()):
        if not fs.exists(f"{root}/{name}"):
            raise CheckpointError(f"{uri}: missing tokenizer file {name}")
        files[name] = fs.cat_file(f"{root}/{name}")
    pad = hf.get("pad_token_id")
    try:
        tok = MarianTokenizer(files, pad_id=pad, eos_id=hf.get("eos_token_id", 0),
                              decoder_start_id=hf.get("decoder_start_token_id", pad),
                              unk_token=tok_config.get("unk_token", "<unk>"), separate_vocabs=separate,
                              model_max_length=hf.get("max_position_embeddings", 0))
    except ValueError as e:
        raise CheckpointError(f"{uri}: {e}") from None
    for side, size, limit in (("vocab.json", tok.src_vocab_size, hf.get("vocab_size")),
                              ("target vocabulary", tok.tgt_vocab_size, hf.get("decoder_vocab_size")
                               or hf.get("vocab_size"))):
        if limit and size > limit:
            raise CheckpointError(f"{uri}: {side} has ids up to {size - 1}, beyond the model's {limit} rows")
    return tok
