"""The detokenize stage (CPU): n-best target ids -> `translation` text (and the `nbest` list).

Rows with ATTENTION (segments with inline markup, pipeline/stages/translate.py) get ALIGN: per word of the
translation, the word of the source its pieces attend to most (attention summed over both words' pieces, as
bench/markup.py measured it); null where the words' pieces are not the ids the model saw.
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.columns import ALIGN, ATTENTION, HYP_IDS, STATUS, RowStatus, StageColumns


class Detokenize:
    """Target ids -> text: `translation` (best) and, with n-best, the `nbest` list."""

    def __init__(self, model_uri: str, nbest: int, write_scores: bool, storage_options: dict, source_column: str = "",
                 marked: bool = False):
        from model.formats import load_tokenizer

        self.tokenizer = load_tokenizer(model_uri, storage_options)
        self.nbest, self.write_scores = nbest, write_scores
        # The source text, where a stage needs it (""; none): same_language rows (--source-lang auto) take it as
        # their translation, and ATTENTION (--format html|markdown) is turned into ALIGN against it.
        self.source_column = source_column
        self.columns = self.declare(nbest, write_scores, source_column, marked)

    @staticmethod
    def declare(nbest: int, write_scores: bool, source_column: str = "", marked: bool = False) -> StageColumns:
        dropped = (() if nbest > 1 else ("nbest_scores",)) + (() if write_scores or nbest > 1 else ("score",))
        source = (source_column,) if source_column else ()
        attention = (ATTENTION,) if marked else ()
        return StageColumns("detokenize", (HYP_IDS, "score", "nbest_scores", STATUS, *source, *attention),
                            writes=("translation", *(("nbest",) if nbest > 1 else ()), *((ALIGN,) if marked else ())),
                            drops=(HYP_IDS, *dropped, *attention))

    def __call__(self, table: pa.Table) -> pa.Table:
        self.columns.check(table)
        nbest = table.column(HYP_IDS).to_pylist()
        flat = [ids for row in nbest for ids in row]
        texts = iter(self.tokenizer.decode_target(flat))
        decoded = [[next(texts) for _ in row] for row in nbest]
        best = [row[0] for row in decoded]
        # A source that could not be read has no translation, not an empty one.
        status = table.column(STATUS).to_pylist()
        best = [None if s == RowStatus.INVALID_UTF8 else t for t, s in zip(best, status, strict=True)]
        if self.source_column and RowStatus.SAME_LANGUAGE in status:  # already in the target language: as it is
            from pipeline.inputs import decode_texts

            sources = decode_texts(table.column(self.source_column))[0]
            best = [src if s == RowStatus.SAME_LANGUAGE else t for t, s, src in zip(best, status, sources, strict=True)]
        table = table.append_column("translation", pa.array(best, pa.string()))
        if self.nbest > 1:
            table = table.append_column("nbest", pa.array(decoded, pa.list_(pa.string())))
        else:
            table = table.drop_columns(["nbest_scores"])
        if not self.write_scores and self.nbest == 1:
            table = table.drop_columns(["score"])
        if ATTENTION in table.column_names:
            sources = table.column(self.source_column).to_pylist()
            align = [None if a is None or not ids or not ids[0] or t is None or s is None
                     else word_alignment(self.tokenizer, s, t, ids[0], a)
                     for s, t, ids, a in zip(sources, best, nbest, table.column(ATTENTION).to_pylist(), strict=True)]
            table = table.drop_columns([ATTENTION]).append_column(ALIGN, pa.array(align, pa.list_(pa.int32())))
        return table.drop_columns([HYP_IDS])


def _word_of_pieces(pieces: list[list[int]]) -> list[int]:
    return [w for w, ids in enumerate(pieces) for _ in ids]


def word_alignment(tokenizer, source: str, translation: str, hyp: list[int],
                   attention: list[float]) -> list[int] | None:
    """Per word of `translation` (split at whitespace), the word of `source` that its pieces attend to most:
    `attention` is (len(hyp) x source pieces) row-major. None where the words, encoded one by one, are not
    the pieces the model read and wrote (a language prefix, a normalizer that changed the text, a target
    segmentation that is not the tokenizer's own)."""
    import numpy as np

    src_words, tgt_words = source.split(), translation.split()
    if not src_words or not tgt_words or len(attention) % len(hyp):
        return None
    tgt_pieces = tokenizer.encode_target(tgt_words)
    if [t for w in tgt_pieces for t in w] != list(hyp):
        return None
    src_of = _word_of_pieces(tokenizer.source_ids(src_words))
    if len(src_of) * len(hyp) != len(attention):
        return None
    weights = np.asarray(attention, dtype=np.float32).reshape(len(hyp), len(src_of))
    by_word = np.zeros((len(tgt_words), len(src_words)), dtype=np.float32)
    np.add.at(by_word, (np.asarray(_word_of_pieces(tgt_pieces))[:, None], np.asarray(src_of)[None, :]), weights)
    return by_word.argmax(1).tolist()
