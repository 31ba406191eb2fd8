"""The translation pipeline, assembled in one place.

    read each shard (+ path) -> [drop rows done by an earlier run] -> [--unit document: cut into segments]
      -> [--source-lang auto: identify each row's language (CPU tasks)] -> tokenize (CPU actors)
      -> translate (model actors, GPU or CPU) -> detokenize (CPU actors)
      -> write part files (CPU tasks)

This is the only place where batch sizes, actor counts, CPUs and GPUs are set. Every stage but the
model actors takes a fraction of a CPU (`cpus_per_stage`), so on a cluster whose free CPUs are split
across nodes in pieces below one every stage can still be placed somewhere (see `read_shards`).
The returned dataset yields one small statistics row per written part file.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.documents import unit_for
from pipeline.inputs import Columns
from pipeline.io import blocks_of_rows
from pipeline.settings import ComputeConfig, TranslationSettings
from pipeline.stages import (
    Detokenize,
    RoutedDetokenize,
    RoutedTokenize,
    Tokenize,
    Translator,
    make_drop_done,
    write_parts,
)


@dataclass(frozen=True)
class ModelSpec:
    """Which model the actors load: URIs, not weights (Ray re-runs actor constructors on restart)."""

    uri: str
    ensemble: tuple[str, ...] = ()
    storage_options: dict | None = None
    languages: object = None  # pipeline/languages ModelLanguages: the language pair its files declare (None: none)


@dataclass(frozen=True)
class PipelinePlan:
    """What this run has to do and with what, decided by the driver before any decoding."""

    output_uri: str
    columns: Columns
    shard_names: dict  # input path -> shard name
    done_ids: dict  # input path -> ids already translated (resume)
    input_versions: dict  # input path -> InputVersion.key() of the file as planned (recorded with every part file)
    model: ModelSpec
    translation: TranslationSettings  # resolved: no "auto" values
    compute: ComputeConfig  # resolved
    reuse: object = None  # pipeline/memory/reuse.py ReuseSpec: the memory and the run's board (None: decode all)
    # --model-for: route k >= 1's language and model (route 0 is `model`), each model's actors and ReuseSpec
    routes: tuple[RouteSpec, ...] = ()
    pool_sizes: tuple[int, ...] = ()  # actors per route, route 0 first (pipeline/languages/routing.py pool_sizes)


@dataclass(frozen=True)
class RouteSpec:
    """One `--model-for LANG=URI`: the rows of LANG go to this model's own actor pool."""

    language: str
    model: ModelSpec
    reuse: object = None  # a ReuseSpec keyed by this model's files (None: decode all)


def read_shards(paths: list[str], fs, compute: ComputeConfig, rename: dict[str, str] | None = None):
    """The rows of these input shards with their `path`, in blocks of one model-actor call (`batch_rows`),
    read by tasks of `cpus_per_stage` CPUs (pipeline/io.py read_parquet_files says why not read_parquet);
    `rename`: input columns named like a column the job adds, and their new names (Columns.renamed)."""
    from pipeline.columns import PATH
    from pipeline.io import read_parquet_files

    return read_parquet_files(paths, fs, compute.batch_rows, compute.cpus_per_stage, path_column=PATH,
                              rename=rename)


def model_actor_pool(compute: ComputeConfig, size: int = 0):
    """The model actors' pool; `size`: a routed pool's share of them (fixed, or at most that many when the
    pool autoscales).

    One call in flight per model actor: Ray Data's default (4) queued every call of a small run on the first
    actor to finish loading the model while the others, a moment behind, got none (the 300-row sample:
    actor_rows [300] on two actors). A call lasts seconds to minutes, so the next block's short wait for a free
    actor costs nothing measurable."""
    import ray.data

    if compute.actors:
        return ray.data.ActorPoolStrategy(size=size or compute.actors, max_tasks_in_flight_per_actor=1)
    if size:
        return ray.data.ActorPoolStrategy(min_size=1, max_size=size, max_tasks_in_flight_per_actor=1)
    return ray.data.ActorPoolStrategy(min_size=compute.min_actors, max_size=compute.max_actors,
                                      max_tasks_in_flight_per_actor=1)


def stage_columns(plan: PipelinePlan) -> list:
    """Each stage's declared columns, in pipeline order (pipeline/columns.py StageColumns)."""
    from pipeline.columns import DETECTED, MARKED, NSEG, PATH, SEG, StageColumns

    settings, columns = plan.translation, plan.columns
    languages = tuple(settings.languages.columns)
    detect = settings.languages.detect
    marked = marked_segments(settings)  # inline markup: placed by alignment
    same = columns.source if detect else ""
    if plan.routes:  # routed pools place tags without attention
        stages = [RoutedTokenize.declare(columns.source, settings.languages),
                  *(Translator.declare(reuse is not None, r) for r, reuse in enumerate(route_reuse(plan))),
                  RoutedDetokenize.declare(settings.decode.nbest, settings.write_scores, same)]
    else:
        stages = [Tokenize.declare(columns.source, settings.languages),
                  Translator.declare(plan.reuse is not None, marked=marked),
                  Detokenize.declare(settings.decode.nbest, settings.write_scores, detokenize_source(plan), marked)]
    stages.append(StageColumns("write", (PATH, columns.id)))
    if detect:
        stages.insert(0, StageColumns("detect languages", (columns.source,), writes=(DETECTED,)))
    if settings.unit == "document":
        stages.insert(0, StageColumns("split documents", (PATH, columns.id, columns.source, *languages),
                                      writes=(SEG, NSEG, *((MARKED,) if marked else ()))))
    return stages


def detect_stage(plan: PipelinePlan, by_document: bool):
    """--source-lang auto: the function that adds each row's `detected_lang` (None without it); by document:
    a segment not identified takes its document's language (pipeline/languages/stage.py)."""
    if not plan.translation.languages.detect:
        return None
    from functools import partial

    from pipeline.languages import detect_languages

    return partial(detect_languages, source_column=plan.columns.source,
                   min_confidence=plan.translation.lang_confidence, group_column=plan.columns.id if by_document else "")


def build_pipeline(ds, plan: PipelinePlan):
    """ds: rows of the pending input shards with their `path` column, in blocks of `batch_rows` (read_shards)."""
    import ray.data

    from pipeline.columns import PATH, check_stage_chain

    model, settings, compute = plan.model, plan.translation, plan.compute
    # Checked once here, before any actor starts: a stage that would miss a column fails now, not per batch.
    check_stage_chain([PATH, plan.columns.id, plan.columns.source, *settings.languages.columns], stage_columns(plan))
    so = model.storage_options or {}
    cpu_pool = ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, compute.cpu_actors))
    if any(plan.done_ids.values()):
        ds = ds.map_batches(make_drop_done(plan.columns.id, plan.done_ids), batch_format="pyarrow",
                            num_cpus=compute.cpus_per_stage)
    unit = unit_for(settings)
    explode = unit.explode(plan.columns.id, plan.columns.source, settings.languages)
    detect = detect_stage(plan, by_document=explode is not None)
    if explode is not None:  # documents: segments of many documents share the model actors' batches
        # Languages are identified on whole documents' segments (pipeline/languages/stage.py), so in the
        # same task that cuts them; a block of documents is many times as many segments: cut again into
        # model-actor calls.
        cut = explode if detect is None else (lambda table: detect(explode(table)))
        ds = blocks_of_rows(ds.map_batches(cut, batch_format="pyarrow", num_cpus=compute.cpus_per_stage),
                            compute.batch_rows, {"num_cpus": compute.cpus_per_stage})
    elif detect is not None:
        ds = ds.map_batches(detect, batch_format="pyarrow", num_cpus=compute.cpus_per_stage)
    # The reader's blocks are of one actor call each (`read_shards`): results leave a stage block by
    # block, so small blocks keep translations streaming to storage and bound what a killed run loses.
    ds = translate_stages(ds, plan, cpu_pool) if not plan.routes else routed_stages(ds, plan, cpu_pool)
    return ds.map_batches(
        write_parts,
        fn_kwargs=dict(output_uri=plan.output_uri, shard_names=plan.shard_names, id_column=plan.columns.id,
                       storage_options=so, unit=unit, decoded_with=settings.precision,
                       input_versions=plan.input_versions),
        batch_format="pyarrow", num_cpus=compute.cpus_per_stage,
    )


def _translator(ds, plan: PipelinePlan, model: ModelSpec, reuse, pool, route: int = -1):
    """One pool of model actors (of `model`): on CPUs or GPUs, each call a large batch that the actor sorts by
    length and cuts into token-budget sub-batches."""
    settings, compute = plan.translation, plan.compute
    return ds.map_batches(
        Translator,
        fn_constructor_kwargs=dict(model_uri=model.uri, decode=settings.decode, precision=settings.precision,
                                   max_tokens=compute.max_tokens, torch_threads=compute.torch_threads,
                                   storage_options=model.storage_options or {}, ensemble_uris=model.ensemble,
                                   cpu_blas=compute.cpu_blas, engine=settings.engine, cpu_streams=compute.cpu_streams,
                                   gpus_per_actor=compute.gpus_per_actor, reuse=reuse, route=route),
        batch_size=compute.batch_rows, batch_format="pyarrow", compute=pool,
        num_gpus=compute.gpus_per_actor or None, num_cpus=compute.cpus_per_actor,
    )


def translate_stages(ds, plan: PipelinePlan, cpu_pool):
    """tokenize -> one pool of model actors -> detokenize."""
    model, settings, compute = plan.model, plan.translation, plan.compute
    so = model.storage_options or {}
    ds = ds.map_batches(
        Tokenize,
        fn_constructor_kwargs=dict(model_uri=model.uri, source_column=plan.columns.source,
                                   max_source_tokens=settings.max_source_tokens, long_policy=settings.long_policy,
                                   storage_options=so, languages=settings.languages,
                                   model_languages=model.languages),
        batch_format="pyarrow", compute=cpu_pool, num_cpus=compute.cpus_per_stage,
    )
    ds = _translator(ds, plan, model, plan.reuse, model_actor_pool(compute))
    return ds.map_batches(
        Detokenize,
        fn_constructor_kwargs=dict(model_uri=model.uri, nbest=settings.decode.nbest,
                                   write_scores=settings.write_scores, storage_options=so,
                                   source_column=detokenize_source(plan), marked=marked_segments(settings)),
        batch_format="pyarrow", compute=cpu_pool, num_cpus=compute.cpus_per_stage,
    )


def marked_segments(settings) -> bool:
    """Whether segments may carry inline markup (MARKED), whose tags the attention places."""
    return settings.unit == "document" and settings.format != "text"


def detokenize_source(plan: PipelinePlan) -> str:
    """The source column the detokenize stage reads: for same_language rows (--source-lang auto) and for
    turning ATTENTION into word alignments (inline markup); "" where it needs none."""
    settings = plan.translation
    return plan.columns.source if settings.languages.detect or marked_segments(settings) else ""


def route_reuse(plan: PipelinePlan) -> list:
    return [plan.reuse, *(r.reuse for r in plan.routes)]


def routed_stages(ds, plan: PipelinePlan, cpu_pool):
    """--model-for: tokenize with each row's route's model -> one pool per route, in a chain, each decoding its
    route's rows and passing the others on (pipeline/languages/routing.py) -> detokenize per route."""
    from pipeline.languages import Routes

    settings, compute = plan.translation, plan.compute
    models = [plan.model, *(r.model for r in plan.routes)]
    so = plan.model.storage_options or {}
    ds = ds.map_batches(
        RoutedTokenize,
        fn_constructor_kwargs=dict(routes=Routes(tuple(r.language for r in plan.routes)),
                                   models=[(m.uri, m.languages) for m in models], source_column=plan.columns.source,
                                   max_source_tokens=settings.max_source_tokens, long_policy=settings.long_policy,
                                   storage_options=so, languages=settings.languages),
        batch_format="pyarrow", compute=cpu_pool, num_cpus=compute.cpus_per_stage,
    )
    for r, (model, reuse) in enumerate(zip(models, route_reuse(plan), strict=True)):
        ds = _translator(ds, plan, model, reuse, model_actor_pool(compute, plan.pool_sizes[r]), route=r)
    return ds.map_batches(
        RoutedDetokenize,
        fn_constructor_kwargs=dict(model_uris=[m.uri for m in models], nbest=settings.decode.nbest,
                                   write_scores=settings.write_scores, storage_options=so,
                                   source_column=plan.columns.source if settings.languages.detect else ""),
        batch_format="pyarrow", compute=cpu_pool, num_cpus=compute.cpus_per_stage,
    )
