"""The CPU stages of a routed run (`--model-for`): tokenize and detokenize with each row's own route's model
files (pipeline/languages/routing.py). The model actors of each route are Translator pools with `route` set."""

from __future__ import annotations

import pyarrow as pa

from pipeline.columns import ROUTE, StageColumns
from pipeline.stages.detokenize import Detokenize
from pipeline.stages.tokenize import Tokenize


class RoutedTokenize:
    """Each row's route from its language (`routes`, a Routes), then the row tokenized with that route's model.
    `models`: per route (model URI, ModelLanguages)."""

    def __init__(self, routes, models: list[tuple[str, object]], source_column: str, max_source_tokens: int,
                 long_policy: str, storage_options: dict, languages):
        self.routes, self.languages = routes, languages
        self.stages = {r: Tokenize(uri, source_column, max_source_tokens, long_policy, storage_options, languages,
                                   model_languages) for r, (uri, model_languages) in enumerate(models)}
        self.columns = self.declare(source_column, languages)

    @staticmethod
    def declare(source_column: str, languages) -> StageColumns:
        plain = Tokenize.declare(source_column, languages)
        return StageColumns("tokenize (routed)", plain.reads, writes=(*plain.writes, ROUTE))

    def __call__(self, table: pa.Table) -> pa.Table:
        from pipeline.languages import by_route

        self.columns.check(table)
        routes = self.routes.of(self.languages.of_rows(table)[0])
        table = table.append_column(ROUTE, pa.array(routes, pa.int32()))
        return by_route(table, self.stages, routes)


class RoutedDetokenize:
    """Each row's target ids to text with its own route's model's target vocabulary."""

    def __init__(self, model_uris: list[str], nbest: int, write_scores: bool, storage_options: dict,
                 source_column: str = ""):
        self.stages = {r: Detokenize(uri, nbest, write_scores, storage_options, source_column)
                       for r, uri in enumerate(model_uris)}
        self.columns = self.declare(nbest, write_scores, source_column)

    @staticmethod
    def declare(nbest: int, write_scores: bool, source_column: str = "") -> StageColumns:
        plain = Detokenize.declare(nbest, write_scores, source_column)
        return StageColumns("detokenize (routed)", (*plain.reads, ROUTE), plain.writes, plain.drops)

    def __call__(self, table: pa.Table) -> pa.Table:
        from pipeline.languages import by_route

        self.columns.check(table)
        return by_route(table, self.stages, table.column(ROUTE).to_pylist())
