"""The detokenize stage (CPU): n-best target ids -> `translation` text (and the `nbest` list)."""

from __future__ import annotations

import pyarrow as pa

from pipeline.columns import HYP_IDS, STATUS, RowStatus, StageColumns


class Detokenize:
    """Target ids -> text: `translation` (best) and, with n-best, the `nbest` list."""

    def __init__(self, model_uri: str, nbest: int, write_scores: bool, storage_options: dict, source_column: str = ""):
        from model.formats import load_tokenizer

        self.tokenizer = load_tokenizer(model_uri, storage_options)
        self.nbest, self.write_scores = nbest, write_scores
        self.source_column = source_column  # same_language rows (--source-lang auto) take their source as translation
        self.columns = self.declare(nbest, write_scores, source_column)

    @staticmethod
    def declare(nbest: int, write_scores: bool, source_column: str = "") -> StageColumns:
        dropped = (() if nbest > 1 else ("nbest_scores",)) + (() if write_scores or nbest > 1 else ("score",))
        source = (source_column,) if source_column else ()
        return StageColumns("detokenize", (HYP_IDS, "score", "nbest_scores", STATUS, *source),
                            writes=("translation", *(("nbest",) if nbest > 1 else ())), drops=(HYP_IDS, *dropped))

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
        return table.drop_columns([HYP_IDS])
