"""Tokenizers of M2M100 and NLLB-200 directories, as transformers' `M2M100Tokenizer` / `NllbTokenizer` behave.

Both use fairseq's id layout: `<s>` 0, `<pad>` 1, `</s>` 2, `<unk>` 3, then the pieces, then one
token per language. A source is `[source language] pieces [</s>]`; decoding starts from `</s>`
and the target language token is forced next. The two differ in how pieces get ids:

    m2m100   `vocab.json` maps SentencePiece pieces to ids (a piece it lacks is `<unk>`);
             language tokens `__de__` follow the vocabulary: len(vocab.json) + index
    nllb     no vocabulary file: SentencePiece id + 1 (SentencePiece's own `<unk>` is 3);
             language codes `deu_Latn` follow the pieces, then `<mask>`

Language codes are the ones users pass (`de`, `deu_Latn`); the list and its order come from the
directory's tokenizer files when they name them, else from fairseq's lists (language_codes.json).
Same interface as `model.tokenizers.sentencepiece.Tokenizer`, plus the language hooks the pipeline uses.
"""

from __future__ import annotations

import hashlib
import json
import os

import sentencepiece as spm

from model.errors import CheckpointError
from model.storage import read_json
from model.tokenizers.marian import SPIECE_UNDERLINE
from model.tokenizers.sentencepiece import SENTENCE_END

SPM_FILE = "sentencepiece.bpe.model"
SPECIALS = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "language_codes.json")) as _f:
    LANGUAGE_CODES: dict[str, list[str]] = json.load(_f)


class FairseqMultilingualTokenizer:
    """One SentencePiece model for both sides, fairseq ids, a language token on each side."""

    pad_id, eos_id, bos_id = 1, 2, 2  # bos: the decoder's start symbol, which is </s>

    def __init__(self, kind: str, files: dict[str, bytes], language_tokens: dict[str, int], token_format: str,
                 model_max_length: int = 0):
        """kind: "m2m100" or "nllb"; language_tokens: code -> id; token_format: "__{}__" or "{}"."""
        self.kind, self._files = kind, dict(files)
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.LoadFromSerializedProto(files[SPM_FILE])
        except RuntimeError as e:
            raise ValueError(f"{SPM_FILE} is not a SentencePiece model ({e})") from None
        if kind == "m2m100":
            vocab = json.loads(files["vocab.json"])
            if not isinstance(vocab, dict) or "<unk>" not in vocab:
                raise ValueError("vocab.json must map pieces to ids and hold '<unk>'")
            self.piece_ids = vocab
        else:  # SentencePiece id + 1 (fairseq's offset); its <unk>, <s>, </s> take fairseq's ids
            self.piece_ids = {self.sp.id_to_piece(i): i + 1 for i in range(3, self.sp.get_piece_size())}
            self.piece_ids.update(SPECIALS)
        self.unk_id = self.piece_ids["<unk>"]
        self.language_tokens = dict(language_tokens)
        self.token_format = token_format
        self.pieces = {i: p for p, i in self.piece_ids.items()}
        self.special_ids = frozenset({*SPECIALS.values(), self.unk_id, *language_tokens.values()})
        self.model_max_length = model_max_length
        self.vocab_size = max([*self.piece_ids.values(), *language_tokens.values()]) + 1

    # --- the tokenizer interface ------------------------------------------------------------------
    multilingual = True
    needs_languages = True  # every row needs its source and target language token

    @property
    def src_vocab_size(self) -> int:
        return self.vocab_size

    tgt_vocab_size = src_vocab_size

    def _ids(self, text: str) -> list[int]:
        return [self.piece_ids.get(p, self.unk_id) for p in self.sp.encode(text, out_type=str)]

    def source_ids(self, texts) -> list[list[int]]:
        """Pieces only: the language token and </s> are added around each piece by the pipeline."""
        return [self._ids(t) for t in texts]

    def encode_source(self, texts) -> list[list[int]]:
        return [ids + [self.eos_id] for ids in self.source_ids(texts)]

    def encode_target(self, texts) -> list[list[int]]:
        return [self._ids(t) for t in texts]

    def decode_target(self, ids) -> list[str]:
        """transformers' `batch_decode(..., skip_special_tokens=True)`: specials and language tokens dropped."""
        out = []
        for row in ids:
            text, run = "", []
            for i in row:
                if i in self.special_ids:
                    continue
                if i in self.pieces:
                    run.append(self.pieces[i])
                elif self.kind == "m2m100":  # an id past the vocabulary (fairseq's made-up words): "<unk>" as is
                    text += self._decode(run) + "<unk>"
                    run = []
            out.append((text + self._decode(run)).strip())
        return out

    def _decode(self, pieces: list[str]) -> str:
        return self.sp.decode_pieces(pieces).replace(SPIECE_UNDERLINE, " ") if pieces else ""

    def sentence_end_ids(self) -> frozenset[int]:
        return frozenset(i for p, i in self.piece_ids.items() if p.rstrip(SPIECE_UNDERLINE).endswith(SENTENCE_END))

    def vocab_fingerprint(self) -> tuple[str, str]:
        h = hashlib.sha256()
        for name in sorted(self._files):
            h.update(self._files[name])
        h.update(json.dumps(self.language_tokens, sort_keys=True).encode())
        return h.hexdigest(), h.hexdigest()

    # --- languages ----------------------------------------------------------------------------------
    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.language_tokens)

    def language_token(self, code: str | None) -> int | None:
        """The id of a language given as users write it (`de`, `deu_Latn`) or as its token (`__de__`)."""
        if not code:
            return None
        if code in self.language_tokens:
            return self.language_tokens[code]
        stripped = code[2:-2] if self.token_format == "__{}__" and code.startswith("__") and code.endswith("__") \
            else None
        return self.language_tokens.get(stripped) if stripped else None

    def language_prefixes(self, source_lang: str | None, target_lang: str | None):
        """(ids before a source piece, ids forced after the decoder's start) for one row; None when the model
        does not know either language (both are needed)."""
        src, tgt = self.language_token(source_lang), self.language_token(target_lang)
        if src is None or tgt is None:
            return None
        return [src], [tgt]

    def files(self) -> tuple[dict[str, bytes], dict]:
        layout = {"type": self.kind, "files": sorted(self._files), "language_tokens": self.language_tokens,
                  "token_format": self.token_format, "model_max_length": self.model_max_length}
        return dict(self._files), layout

    @classmethod
    def from_layout(cls, layout: dict, read) -> FairseqMultilingualTokenizer:
        return cls(layout["type"], {name: read(name) for name in layout["files"]}, layout["language_tokens"],
                   layout["token_format"], layout.get("model_max_length", 0))


def _named_codes(fs, root: str, uri: str, token_format: str) -> list[str] | None:
    """Language codes in the order the directory's tokenizer config lists them (hub directories do)."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        config = read_json(fs, root, name, uri, required=False)
        tokens = config.get("additional_special_tokens") or config.get("extra_special_tokens")
        if isinstance(tokens, list) and tokens:
            tokens = [t["content"] if isinstance(t, dict) else t for t in tokens]
            if token_format == "__{}__":
                return [t[2:-2] for t in tokens if t.startswith("__") and t.endswith("__")]
            return [t for t in tokens if t not in ("<s>", "</s>", "<pad>", "<unk>", "<mask>")]
    return None


def _added_token_ids(fs, root: str, uri: str) -> dict[str, int]:
    """Ids of the added tokens a `tokenizer.json` (transformers' fast tokenizer) records, if there is one."""
    if not fs.exists(f"{root}/tokenizer.json"):
        return {}
    data = read_json(fs, root, "tokenizer.json", uri, required=False)
    return {t["content"]: t["id"] for t in data.get("added_tokens", []) if "content" in t and "id" in t}


def load_m2m100_tokenizer(fs, root: str, uri: str, hf: dict) -> FairseqMultilingualTokenizer:
    """The tokenizer of an M2M100 (vocab.json present) or NLLB (SentencePiece alone) directory."""
    files = {}
    kind = "m2m100" if fs.exists(f"{root}/vocab.json") else "nllb"
    for name in (SPM_FILE, "vocab.json") if kind == "m2m100" else (SPM_FILE,):
        if not fs.exists(f"{root}/{name}"):
            raise CheckpointError(f"{uri}: missing tokenizer file {name}")
        files[name] = fs.cat_file(f"{root}/{name}")
    tok_config = read_json(fs, root, "tokenizer_config.json", uri, required=False)
    token_format = "__{}__" if kind == "m2m100" else "{}"
    codes = _named_codes(fs, root, uri, token_format) or LANGUAGE_CODES[
        tok_config.get("language_codes", "m2m100") if kind == "m2m100" else "nllb"]
    try:
        tok = FairseqMultilingualTokenizer(kind, files, {}, token_format, hf.get("max_position_embeddings", 0))
    except (ValueError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{uri}: {e}") from None
    # Language tokens follow the pieces: M2M100 counts vocab.json's entries, NLLB SentencePiece's pieces + 1.
    first = len(tok.piece_ids) if kind == "m2m100" else tok.sp.get_piece_size() + 1
    language_tokens = {code: first + i for i, code in enumerate(codes)}
    added = _added_token_ids(fs, root, uri)  # a fast tokenizer's own record wins where it has one
    language_tokens.update({c: added[token_format.format(c)] for c in codes if token_format.format(c) in added})
    tok = FairseqMultilingualTokenizer(kind, files, language_tokens, token_format, hf.get("max_position_embeddings", 0))
    limit = hf.get("vocab_size")
    if limit and tok.vocab_size > limit:
        raise CheckpointError(f"{uri}: the tokenizer has ids up to {tok.vocab_size - 1}, beyond the model's {limit} "
                              "rows")
    return tok
