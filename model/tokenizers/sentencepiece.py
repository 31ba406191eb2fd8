"""SentencePiece subword tokenizer: training, encoding, decoding.

Subwords replace the 80k-word lists with UNK of the 2014 systems. One
special-id layout is used everywhere (models, search, data pipeline):
pad=0, unk=1, bos=2, eos=3. Models are held as serialized bytes so a
tokenizer loads from any filesystem (object storage included) without a
local file.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Sequence

import sentencepiece as spm

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


def train_sentencepiece(
    sentences: Iterable[str],
    vocab_size: int,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
    max_sentence_length: int = 4192,
    seed_sentencepiece_size: int = 1_000_000,
) -> bytes:
    """Train a SentencePiece model from an iterable of sentences; return the model bytes.

    `hard_vocab_limit=False` lets tiny corpora (tests) produce a smaller
    vocabulary instead of failing.
    """
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=(s for s in sentences if s and s.strip()),
        model_writer=out,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        max_sentence_length=max_sentence_length,
        seed_sentencepiece_size=seed_sentencepiece_size,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        hard_vocab_limit=False,
        # Keep the training log out of job output; errors still raise.
        minloglevel=2,
    )
    return out.getvalue()


def _processor(model_bytes: bytes) -> spm.SentencePieceProcessor:
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(model_bytes)
    if (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
        raise ValueError(
            "SentencePiece model has special ids "
            f"pad={sp.pad_id()} unk={sp.unk_id()} bos={sp.bos_id()} eos={sp.eos_id()}, "
            f"expected pad={PAD_ID} unk={UNK_ID} bos={BOS_ID} eos={EOS_ID}"
        )
    return sp


SENTENCE_END = (".", ";", ":", "!", "?")


class Tokenizer:
    """Source and target SentencePiece models (the same one for a joint vocabulary); ids are the
    models' own piece ids.

    The interface the pipeline and the search rely on (other tokenizers, such as the Marian one
    in `model.tokenizers.marian`, provide the same): special ids, `source_ids`, `encode_source`,
    `encode_target`, `decode_target`, `sentence_end_ids`, and `files()` for saving.
    """

    kind = "sentencepiece"
    needs_languages = False
    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID
    model_max_length = 0  # our models take any length
    # One language pair: no language tokens (multilingual tokenizers: model/tokenizers/m2m100.py).
    multilingual = False
    languages: tuple[str, ...] = ()

    def language_prefixes(self, source_lang: str | None, target_lang: str | None):
        """(ids before each source piece, ids forced after the decoder's start) for a row in these
        languages; None when the model does not know one of them."""
        return [], []

    def __init__(self, source_model: bytes, target_model: bytes | None = None):
        self.source_bytes = source_model
        self.target_bytes = target_model if target_model is not None else source_model
        self.joint = target_model is None or target_model == source_model
        self.source = _processor(self.source_bytes)
        self.target = self.source if self.joint else _processor(self.target_bytes)

    @property
    def src_vocab_size(self) -> int:
        return self.source.get_piece_size()

    @property
    def tgt_vocab_size(self) -> int:
        return self.target.get_piece_size()

    def source_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Source ids without EOS (the pipeline splits long ones before adding it)."""
        return self.source.encode(list(texts))

    def encode_source(self, texts: Sequence[str]) -> list[list[int]]:
        """Source ids with EOS appended (the encoder's end-of-sentence marker)."""
        return [ids + [self.eos_id] for ids in self.source_ids(texts)]

    def encode_target(self, texts: Sequence[str]) -> list[list[int]]:
        """Target ids without BOS/EOS; training adds them for teacher forcing."""
        return self.target.encode(list(texts))

    def decode_target(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return self.target.decode([list(x) for x in ids])

    def sentence_end_ids(self) -> frozenset[int]:
        """Source ids of pieces that end a sentence or clause: preferred places to cut a long source."""
        sp = self.source
        return frozenset(i for i in range(sp.get_piece_size()) if sp.id_to_piece(i).rstrip("▁").endswith(SENTENCE_END))

    def vocab_fingerprint(self) -> tuple[str, str]:
        """(source, target) hashes of what maps text to ids on each side: models decoded together
        (an ensemble) must agree on both."""
        return hashlib.sha256(self.source_bytes).hexdigest(), hashlib.sha256(self.target_bytes).hexdigest()

    def files(self) -> tuple[dict[str, bytes], dict]:
        """(file name -> bytes, layout): what to write to save this tokenizer, and the layout entry
        that `tokenizer_from_files` reads it back with."""
        if self.joint:
            return {"spm.model": self.source_bytes}, {"type": self.kind, "source": "spm.model", "target": "spm.model"}
        return ({"source.spm": self.source_bytes, "target.spm": self.target_bytes},
                {"type": self.kind, "source": "source.spm", "target": "target.spm"})
