"""The detokenize stage (CPU): n-best target ids -> `translation` text (and the `nbest` list)."""

from __future__ import annotations

import pyarrow as pa

from pipeline.columns import HYP_IDS, STATUS, RowStatus, StageColumns


class Detokenize:
    """Target ids -> text: `translation` (best) and, with n-best, the `nbest` list."""

    def __init__(self, model_uri: str, nbest: int, write_scores: bool, storage_options: dict):
        from model.formats import load_tokenizer

        self.tokenizer = load_tokenizer(model_uri, storage_options)
        self.nbest, self.write_scores = nbest, write_scores
        self.columns = self.declare(nbest, write_scores)

    @staticmethod
    def declare(nbest: int, write_scores: bool) -> StageColumns:
        dropped = (() if nbest > 1 else ("nbest_scores",)) + (() if write_scores or nbest > 1 else ("score",))
        return StageColumns("detokenize", (HYP_IDS, "score", "nbest_scores", STATUS),
                            writes=("translation", *(("nbest",) if nbest > 1 else ())), drops=(HYP_IDS, *dropped))

    def __call__(self, table: pa.Table) -> pa.Table:
        self.columns.check(table)
        nbest = table.column(HYP_IDS).to_pylist()
        flat = [ids for row in nbest for ids in row]
        texts = iter(self.tokenizer.decode_target(flat))
        decoded = [[next(texts) for _ in row] for row in nbest]
        best = [row[0] for row in decoded]
        # A source that could not be read has no translation, not an empty one.
        best = [None if s == RowStatus.INVALID_UTF8 else t
                for t, s in zip(best, table.column(STATUS).to_pylist(), strict=True)]
        table = table.append_column("translation", pa.array(best, pa.string()))
        if self.nbest > 1:
            table = table.append_column("nbest", pa.array(decoded, pa.list_(pa.string())))
        else:
            table = table.drop_columns(["nbest_scores"])
        if not self.write_scores and self.nbest == 1:
            table = table.drop_columns(["score"])
        return table.drop_columns([HYP_IDS])
