"""The tokenize stage (CPU): source text -> id pieces, and each row's status.

Row statuses: pipeline/columns.py's RowStatus.
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.columns import DETECTED, PIECES, STATUS, TARGET_PREFIX, RowStatus, StageColumns
from pipeline.inputs import decode_texts


def split_pieces(ids: list[int], max_len: int, eos_id: int, boundary_ids: frozenset[int]) -> list[list[int]]:
    """Cut a long id list (EOS excluded) into pieces of at most max_len-1 ids, each + EOS.

    Prefers to cut right after a sentence-like boundary (., ;, :, !, ?) in the
    last third of each window, so pieces are clauses rather than arbitrary spans.
    """
    room = max_len - 1
    pieces = []
    start = 0
    while len(ids) - start > room:
        end = start + room
        for cut in range(end, start + (2 * room) // 3, -1):
            if ids[cut - 1] in boundary_ids:
                end = cut
                break
        pieces.append(ids[start:end] + [eos_id])
        start = end
    pieces.append(ids[start:] + [eos_id])
    return pieces


class Tokenize:
    """Source text -> id pieces and a status. Loads the checkpoint's SentencePiece model once.

    Multilingual models get each row's language pair (`languages`, a LanguageChoice): the source
    language token goes in front of every piece, and the target language token is recorded for the
    model actor to force after the decoder's start.
    """

    def __init__(self, model_uri: str, source_column: str, max_source_tokens: int, long_policy: str,
                 storage_options: dict, languages=None, model_languages=None):
        from model.formats import load_tokenizer

        self.tokenizer = load_tokenizer(model_uri, storage_options)
        self.source_column = source_column
        # A model with a fixed number of positions (Marian's max_position_embeddings) bounds the pieces too.
        limit = self.tokenizer.model_max_length
        self.max_len = min(max_source_tokens, limit) if limit else max_source_tokens
        self.long_policy = long_policy
        self.eos = self.tokenizer.eos_id
        self.boundaries = self.tokenizer.sentence_end_ids()
        self.languages = languages
        # --source-lang auto: rows not to decode (pipeline/languages/decide.py), against the model's language pair
        self.model_languages = model_languages
        self.columns = self.declare(source_column, languages)

    @staticmethod
    def declare(source_column: str, languages=None) -> StageColumns:
        detected = (DETECTED,) if languages is not None and languages.detect else ()
        return StageColumns("tokenize", (source_column, *(languages.columns if languages else ()), *detected),
                            writes=(PIECES, TARGET_PREFIX, STATUS))

    def _prefixes(self, table: pa.Table) -> list:
        """Per row (source prefix, target prefix), or a status for a row not to decode: unsupported_language
        for a language the model lacks; with --source-lang auto, also unknown_language and same_language."""
        if self.languages is None:
            return [([], [])] * table.num_rows
        from pipeline.languages import ModelLanguages, language_status

        model = self.model_languages or ModelLanguages()
        cache: dict = {}
        out = []
        for pair in zip(*self.languages.of_rows(table), strict=True):
            if pair not in cache:
                status = language_status(*pair, model) if self.languages.detect else None
                prefixes = self.tokenizer.language_prefixes(*pair) if status is None else status
                cache[pair] = RowStatus.UNSUPPORTED_LANGUAGE if prefixes is None else prefixes
            out.append(cache[pair])
        return out

    def __call__(self, table: pa.Table) -> pa.Table:
        self.columns.check(table)
        texts, invalid = decode_texts(table.column(self.source_column))  # a binary source holds UTF-8 bytes
        clean = [t if isinstance(t, str) and t.strip() else "" for t in texts]
        encoded = self.tokenizer.source_ids(clean)
        pieces, status, targets = [], [], []
        for text, bad, ids, prefixes in zip(clean, invalid, encoded, self._prefixes(table), strict=True):
            if bad or isinstance(prefixes, RowStatus):
                pieces.append([])
                # An empty source is empty, whatever its (undetectable) language; unsupported as it always was.
                empty = not text and prefixes != RowStatus.UNSUPPORTED_LANGUAGE
                status.append(RowStatus.INVALID_UTF8 if bad else RowStatus.EMPTY if empty else prefixes)
                targets.append([])
                continue
            head, target = prefixes
            targets.append(target)
            room = self.max_len - len(head)  # the source language token takes a position in every piece
            if not text:
                pieces.append([])
                status.append(RowStatus.EMPTY)
            elif len(ids) + 1 <= room:
                pieces.append([head + ids + [self.eos]])
                status.append(RowStatus.OK)
            elif self.long_policy == "truncate":
                pieces.append([head + ids[: room - 1] + [self.eos]])
                status.append(RowStatus.TRUNCATED)
            else:
                pieces.append([head + p for p in split_pieces(ids, room, self.eos, self.boundaries)])
                status.append(RowStatus.SPLIT)
        return (table.append_column(PIECES, pa.array(pieces, pa.list_(pa.list_(pa.int32()))))
                .append_column(TARGET_PREFIX, pa.array(targets, pa.list_(pa.int32())))
                .append_column(STATUS, pa.array(status, pa.string())))
