"""The tokenizer contract: what the pipeline, the search and training use of any tokenizer (SentencePiece,
Marian, fairseq multilingual), written down once. Each implementation provides it; nothing downstream
checks which one it holds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class TokenizerContract(Protocol):
    kind: str  # the "type" of its layout in a checkpoint's config.json (model/tokenizers/registry.py)
    pad_id: int
    unk_id: int
    bos_id: int
    eos_id: int
    model_max_length: int  # the longest source the model takes, in ids (0: any)
    needs_languages: bool  # every row needs a source and a target language (M2M100, NLLB); the job checks it

    @property
    def src_vocab_size(self) -> int: ...

    @property
    def tgt_vocab_size(self) -> int: ...

    @property
    def multilingual(self) -> bool: ...

    @property
    def languages(self) -> tuple[str, ...]: ...

    def language_prefixes(self, source_lang: str | None, target_lang: str | None):
        """(ids before each source piece, ids forced after the decoder's start); None for an unknown language."""

    def source_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Source ids without EOS (the pipeline splits long ones before adding it)."""

    def encode_source(self, texts: Sequence[str]) -> list[list[int]]:
        """Source ids with EOS appended."""

    def encode_target(self, texts: Sequence[str]) -> list[list[int]]:
        """Target ids without BOS/EOS."""

    def decode_target(self, ids: Sequence[Sequence[int]]) -> list[str]: ...

    def sentence_end_ids(self) -> frozenset[int]:
        """Source ids of pieces that end a sentence or clause: preferred places to cut a long source."""

    def vocab_fingerprint(self) -> tuple[str, str]:
        """(source, target) hashes: models decoded together (an ensemble) must agree on both."""

    def files(self) -> tuple[dict[str, bytes], dict]:
        """(file name -> bytes, layout) to save it; the layout is what the registry rebuilds it from."""
