"""The translation pipeline, assembled in one place.

    read each shard (+ path) -> [drop rows done by an earlier run] -> [--unit document: cut into segments]
      -> tokenize (CPU actors) -> translate (model actors, GPU or CPU) -> detokenize (CPU actors)
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
from pipeline.stages import Detokenize, Tokenize, Translator, make_drop_done, write_parts


@dataclass(frozen=True)
class ModelSpec:
    """Which model the actors load: URIs, not weights (Ray re-runs actor constructors on restart)."""

    uri: str
    ensemble: tuple[str, ...] = ()
    storage_options: dict | None = None


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


def read_shards(paths: list[str], fs, compute: ComputeConfig, rename: dict[str, str] | None = None):
    """The rows of these input shards with their `path`, in blocks of one model-actor call (`batch_rows`),
    read by tasks of `cpus_per_stage` CPUs (pipeline/io.py read_parquet_files says why not read_parquet);
    `rename`: input columns named like a column the job adds, and their new names (Columns.renamed)."""
    from pipeline.columns import PATH
    from pipeline.io import read_parquet_files

    return read_parquet_files(paths, fs, compute.batch_rows, compute.cpus_per_stage, path_column=PATH,
                              rename=rename)


def model_actor_pool(compute: ComputeConfig):
    import ray.data

    if compute.actors:
        return ray.data.ActorPoolStrategy(size=compute.actors)
    return ray.data.ActorPoolStrategy(min_size=compute.min_actors, max_size=compute.max_actors)


def stage_columns(plan: PipelinePlan) -> list:
    """Each stage's declared columns, in pipeline order (pipeline/columns.py StageColumns)."""
    from pipeline.columns import MARKED, NSEG, PATH, SEG, StageColumns

    settings, columns = plan.translation, plan.columns
    languages = tuple(settings.languages.columns)
    marked = settings.unit == "document" and settings.format != "text"  # inline markup: placed by alignment
    stages = [Tokenize.declare(columns.source, settings.languages),
              Translator.declare(plan.reuse is not None, marked),
              Detokenize.declare(settings.decode.nbest, settings.write_scores, marked),
              StageColumns("write", (PATH, columns.id))]
    if settings.unit == "document":
        stages.insert(0, StageColumns("split documents", (PATH, columns.id, columns.source, *languages),
                                      writes=(SEG, NSEG, *((MARKED,) if marked else ()))))
    return stages


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
    if explode is not None:  # documents: segments of many documents share the model actors' batches
        # A block of documents is many times as many segments: cut again into model-actor calls.
        ds = blocks_of_rows(ds.map_batches(explode, batch_format="pyarrow", num_cpus=compute.cpus_per_stage),
                            compute.batch_rows, {"num_cpus": compute.cpus_per_stage})
    # The reader's blocks are of one actor call each (`read_shards`): results leave a stage block by
    # block, so small blocks keep translations streaming to storage and bound what a killed run loses.
    ds = ds.map_batches(
        Tokenize,
        fn_constructor_kwargs=dict(model_uri=model.uri, source_column=plan.columns.source,
                                   max_source_tokens=settings.max_source_tokens, long_policy=settings.long_policy,
                                   storage_options=so, languages=settings.languages),
        batch_format="pyarrow", compute=cpu_pool, num_cpus=compute.cpus_per_stage,
    )
    ds = ds.map_batches(
        Translator,
        fn_constructor_kwargs=dict(model_uri=model.uri, decode=settings.decode, precision=settings.precision,
                                   max_tokens=compute.max_tokens, torch_threads=compute.torch_threads,
                                   storage_options=so, ensemble_uris=model.ensemble, cpu_blas=compute.cpu_blas,
                                   engine=settings.engine, cpu_streams=compute.cpu_streams,
                                   gpus_per_actor=compute.gpus_per_actor, reuse=plan.reuse),
        # Each call gets a large batch; the actor sorts it by length and cuts token-budget sub-batches.
        batch_size=compute.batch_rows, batch_format="pyarrow", compute=model_actor_pool(compute),
        num_gpus=compute.gpus_per_actor or None, num_cpus=compute.cpus_per_actor,
    )
    ds = ds.map_batches(
        Detokenize,
        fn_constructor_kwargs=dict(model_uri=model.uri, nbest=settings.decode.nbest,
                                   write_scores=settings.write_scores, storage_options=so,
                                   source_column=plan.columns.source),
        batch_format="pyarrow", compute=cpu_pool, num_cpus=compute.cpus_per_stage,
    )
    return ds.map_batches(
        write_parts,
        fn_kwargs=dict(output_uri=plan.output_uri, shard_names=plan.shard_names, id_column=plan.columns.id,
                       storage_options=so, unit=unit, decoded_with=settings.precision,
                       input_versions=plan.input_versions),
        batch_format="pyarrow", num_cpus=compute.cpus_per_stage,
    )
