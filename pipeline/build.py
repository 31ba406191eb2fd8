"""The translation pipeline, assembled in one place.

    read Parquet (+ path) -> [drop rows done by an earlier run] -> tokenize (CPU actors)
      -> translate (model actors, GPU or CPU) -> detokenize (CPU actors) -> write part files (CPU tasks)

This is the only place where batch sizes, actor counts, CPUs and GPUs are set.
The returned dataset yields one small statistics row per written part file.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.search import DecodeConfig
from pipeline.shards import Columns, make_drop_done, write_parts
from pipeline.translate import Detokenize, Tokenize, Translator


@dataclass(frozen=True)
class PipelinePlan:
    """What this run has to do, decided by the driver before any decoding."""

    output_uri: str
    columns: Columns
    shard_names: dict  # input path -> shard name
    done_ids: dict  # input path -> ids already translated (resume)


def actor_pool(cfg):
    import ray.data

    if cfg.actors:
        return ray.data.ActorPoolStrategy(size=cfg.actors)
    return ray.data.ActorPoolStrategy(min_size=cfg.min_actors, max_size=cfg.max_actors)


def build_pipeline(ds, cfg, plan: PipelinePlan):
    """ds: rows of the pending input shards, with Ray's `path` column. cfg: the job's TranslateConfig."""
    import ray.data

    so = cfg.storage_options
    cpu_pool = ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, cfg.cpu_actors))
    if any(plan.done_ids.values()):
        ds = ds.map_batches(make_drop_done(plan.columns.id, plan.done_ids), batch_format="pyarrow",
                            num_cpus=cfg.cpus_per_stage)
    # Blocks of one actor call each: the reader's blocks can hold whole files (or several), and
    # results leave a stage block by block, so small blocks keep translations streaming to storage
    # and bound what a killed run loses.
    ds = ds.repartition(target_num_rows_per_block=cfg.batch_rows)
    ds = ds.map_batches(
        Tokenize,
        fn_constructor_kwargs=dict(model_uri=cfg.model, source_column=plan.columns.source,
                                   max_source_tokens=cfg.max_source_tokens, long_policy=cfg.long_policy,
                                   storage_options=so),
        batch_format="pyarrow", compute=cpu_pool, num_cpus=cfg.cpus_per_stage,
    )
    decode = DecodeConfig(beam_size=cfg.beam_size, max_len_a=cfg.max_len_a, max_len_b=cfg.max_len_b,
                          min_len=cfg.min_len, length_penalty=cfg.length_penalty, alpha=cfg.alpha, nbest=cfg.nbest)
    ds = ds.map_batches(
        Translator,
        fn_constructor_kwargs=dict(model_uri=cfg.model, decode=decode, max_tokens=cfg.max_tokens,
                                   precision=cfg.precision, torch_threads=cfg.torch_threads, storage_options=so,
                                   fixed_rows=cfg.batch_rows if cfg.batching == "fixed" else 0,
                                   ensemble_uris=tuple(cfg.ensemble)),
        # Each call gets a large batch; the actor sorts it by length and cuts token-budget sub-batches.
        batch_size=cfg.batch_rows, batch_format="pyarrow", compute=actor_pool(cfg),
        num_gpus=cfg.gpus_per_actor or None, num_cpus=cfg.cpus_per_actor,
    )
    ds = ds.map_batches(
        Detokenize,
        fn_constructor_kwargs=dict(model_uri=cfg.model, nbest=cfg.nbest, write_scores=cfg.write_scores,
                                   storage_options=so),
        batch_format="pyarrow", compute=cpu_pool, num_cpus=cfg.cpus_per_stage,
    )
    return ds.map_batches(
        write_parts,
        fn_kwargs=dict(output_uri=plan.output_uri, shard_names=plan.shard_names, id_column=plan.columns.id,
                       storage_options=so),
        batch_format="pyarrow", num_cpus=cfg.cpus_per_stage,
    )
