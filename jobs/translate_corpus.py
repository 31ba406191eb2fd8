"""Translate sharded Parquet corpora with a pool of model actors on Ray Data; write translations and a report.

    python jobs/translate_corpus.py                      # the shipped sample, with the shipped model
    python jobs/translate_corpus.py --input s3://bucket/docs/date=2026-11-20/ --output s3://bucket/out/2026-11-20/
    ray job submit --working-dir . -- python jobs/translate_corpus.py --input ... --output ...

Re-running the same command after a failure finishes what is missing and
leaves finished shards untouched. See pipeline/shards.py for the output layout.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run as a script

from jobs.cli import arg, parse_config, print_config, redacted, with_absolute_paths  # noqa: E402
from pipeline.io import absolute_uri  # noqa: E402
from pipeline.metrics import parse_metrics  # noqa: E402

SAMPLE_INPUT = os.path.join(ROOT, "samples", "multi30k-en-de")
DEFAULT_MODEL = os.path.join(ROOT, "models", "multi30k-en-de")


@dataclass(frozen=True)
class TranslateConfig:
    """Translate the `source` column of Parquet shards; write translations, report.json and report.md."""

    input: str = arg(SAMPLE_INPUT, help="Parquet file, directory/prefix or glob on any fsspec filesystem; "
                     "defaults to the sample corpus shipped in the repo")
    output: str = arg("", help="output directory/prefix; empty means ./outputs/<UTC timestamp>/")
    model: str = arg(DEFAULT_MODEL, help="checkpoint directory at any URI; defaults to the shipped model")
    ensemble: list[str] = arg([], help="more checkpoints (same vocabulary) to decode with --model as an ensemble "
                              "that averages their log-probabilities (repeatable)")
    id_column: str = arg("id", help="unique row id column (string or integer)")
    source_column: str = arg("source", help="text to translate")
    reference_column: str = arg("reference", help="reference translations; scored when present")
    # decoding
    beam_size: int = arg(5, help="beam size (1: greedy)")
    length_penalty: str = arg("average", help="hypothesis length normalization",
                              choices=["none", "average", "gnmt"])
    alpha: float = arg(1.0, help="length penalty exponent")
    max_len_a: float = arg(1.5, help="max target length = a * source length + b")
    max_len_b: int = arg(10, help="max target length = a * source length + b")
    min_len: int = arg(1, help="minimum target length")
    nbest: int = arg(1, help="hypotheses per sentence; > 1 adds `nbest` and `nbest_scores` columns")
    write_scores: bool = arg(False, help="add a `score` column (length-normalized log-probability)")
    precision: str = arg("auto", help="auto: bf16 on GPU, fp32 on CPU; int8 (CPU actors only): int8 linear "
                         "layers, 1.5-1.7x faster than fp32", choices=["auto", "fp32", "bf16", "fp16", "int8"])
    max_source_tokens: int = arg(256, help="longer sources are split (or truncated) to this many subwords")
    long_policy: str = arg("split", help="what to do with sources over --max-source-tokens",
                           choices=["split", "truncate"])
    # hardware and batching
    actors: int = arg(0, help="fixed number of model actors (0: autoscale between --min-actors and --max-actors)")
    min_actors: int = arg(1, help="autoscaling pool: minimum model actors")
    max_actors: int = arg(0, help="autoscaling pool: maximum model actors (0: one per GPU in the cluster, "
                          "or 1 on CPU)")
    gpus_per_actor: float = arg(-1.0, help="GPUs per model actor, fractional allowed (-1: 1 if the cluster "
                                "has GPUs, else 0)")
    cpus_per_actor: float = arg(2.0, help="CPUs reserved per model actor (also its torch threads on CPU)")
    torch_threads: int = arg(0, help="torch threads per CPU actor (0: --cpus-per-actor)")
    batch_rows: int = arg(1024, help="rows per model-actor call (sorted by length inside the actor)")
    max_tokens: int = arg(12000, help="decoding token budget per sub-batch: rows x beam x (source + target)")
    batching: str = arg("tokens", help="tokens: length-sorted token-budget sub-batches; fixed: --batch-rows "
                        "rows in input order (the plain generate() loop; a benchmark baseline)",
                        choices=["tokens", "fixed"])
    cpu_actors: int = arg(1, help="actors for each of the tokenize and detokenize stages")
    cpus_per_stage: float = arg(0.25, help="CPUs per task/actor of the tokenize, detokenize and write stages")
    # scoring and output
    metrics: str = arg("bleu,chrf,ter", help="comma-separated metrics when a reference column exists ('' for none)")
    overwrite: bool = arg(False, help="delete --output first instead of resuming into it")
    storage_options: dict = arg({}, help="JSON options for fsspec (e.g. endpoint_url); never logged")

    def __post_init__(self):
        if self.nbest > self.beam_size:
            raise ValueError("--nbest cannot exceed --beam-size")
        parse_metrics(self.metrics)
        if self.max_source_tokens < 2:
            raise ValueError("--max-source-tokens must be >= 2")

    @property
    def metric_names(self) -> tuple[str, ...]:
        return parse_metrics(self.metrics)


# Flags that change what is written; a resumed run must use the same values (hardware flags may change).
FINGERPRINT_FIELDS = ("beam_size", "length_penalty", "alpha", "max_len_a", "max_len_b", "min_len", "nbest",
                      "write_scores", "precision", "max_source_tokens", "long_policy", "metrics")


def resolve_hardware(cfg: TranslateConfig) -> TranslateConfig:
    """Fill the automatic hardware flags from the cluster's resources."""
    import ray

    return hardware_for(cfg, ray.cluster_resources().get("GPU", 0))


def hardware_for(cfg: TranslateConfig, gpus: float) -> TranslateConfig:
    """The automatic hardware flags for a cluster with `gpus` GPUs; ValueError for impossible ones."""
    gpus_per_actor = cfg.gpus_per_actor if cfg.gpus_per_actor >= 0 else (1.0 if gpus else 0.0)
    max_actors = cfg.max_actors or (max(1, int(gpus // gpus_per_actor)) if gpus_per_actor else 1)
    precision = cfg.precision if cfg.precision != "auto" else ("bf16" if gpus_per_actor else "fp32")
    if precision == "int8" and gpus_per_actor:
        raise ValueError("--precision int8 is for CPU actors (--gpus-per-actor 0); on GPUs use bf16 or fp16")
    threads = cfg.torch_threads or max(1, int(cfg.cpus_per_actor))
    return replace(cfg, gpus_per_actor=gpus_per_actor, max_actors=max(max_actors, cfg.min_actors),
                   precision=precision, torch_threads=threads)


def plan_run(cfg: TranslateConfig):
    """Inspect input, model and output before any decoding; errors name what is wrong."""
    from model.checkpoint import read_config
    from pipeline.io import resolve
    from pipeline.shards import OutputLayout, claim_output, discover_shards, shard_state

    in_fs, shards, columns, _ = discover_shards(cfg.input, cfg.id_column, cfg.source_column,
                                                cfg.reference_column, cfg.storage_options)
    model_config = read_config(cfg.model, cfg.storage_options)
    members = [read_config(uri, cfg.storage_options) for uri in cfg.ensemble]
    out_fs, out_root = resolve(cfg.output, cfg.storage_options)
    if cfg.overwrite and out_fs.exists(out_root):
        out_fs.rm(out_root, recursive=True)
    layout = OutputLayout(out_root)
    claim_output(out_fs, layout, {
        "model_weights": [c["files"]["model.safetensors"] for c in [model_config, *members]],
        "columns": [columns.id, columns.source, columns.reference],
        **{k: getattr(cfg, k) for k in FINGERPRINT_FIELDS},
    })
    with ThreadPoolExecutor(16) as pool:
        states = list(pool.map(lambda s: shard_state(out_fs, layout, s, columns.id), shards))
    return in_fs, out_fs, layout, shards, columns, model_config, states


def run_pipeline(cfg, in_fs, shards, columns, states) -> dict:
    """Translate what is missing; returns this run's statistics."""
    import ray.data

    from pipeline.build import PipelinePlan, build_pipeline
    from pipeline.io import pyarrow_filesystem

    todo = [s for s, (done, ids) in zip(shards, states, strict=True) if not done and s.rows > len(ids)]
    run = {"sentences": 0, "source_tokens": 0, "target_tokens": 0, "padded_source_tokens": 0,
           "actor_peak_rss_mb": 0.0, "actor_decode_seconds": 0.0}
    status: Counter = Counter()
    if todo:
        plan = PipelinePlan(output_uri=cfg.output, columns=columns, shard_names={s.path: s.name for s in todo},
                            done_ids={s.path: ids for s, (_, ids) in zip(shards, states, strict=True) if ids})
        ds = ray.data.read_parquet([s.path for s in todo], filesystem=pyarrow_filesystem(in_fs), include_paths=True)
        for batch in build_pipeline(ds, cfg, plan).iter_batches(batch_format="pyarrow", batch_size=None):
            for row in batch.to_pylist():
                run["sentences"] += row["rows"]
                run["source_tokens"] += row["source_tokens"]
                run["target_tokens"] += row["target_tokens"]
                run["padded_source_tokens"] += row["padded_tokens"]
                run["actor_peak_rss_mb"] = max(run["actor_peak_rss_mb"], row["actor_peak_rss_mb"])
                run["actor_decode_seconds"] += row["decode_seconds"]
                status.update(json.loads(row["status"]))
    run["shards_translated"] = len(todo)
    run["status"] = dict(status)
    return run


def commit_all(cfg, shards, columns, states) -> dict[str, dict]:
    """Commit every unfinished shard (Ray tasks, in parallel); return all shards' statistics."""
    import ray

    from pipeline.io import resolve
    from pipeline.metrics import MetricOptions
    from pipeline.shards import OutputLayout, commit_shard, output_fields, read_shard_stats

    added = output_fields(cfg.nbest, cfg.write_scores)
    commit = ray.remote(num_cpus=cfg.cpus_per_stage)(commit_shard)
    refs = {s.name: commit.remote(s, cfg.input, cfg.output, columns, added, cfg.metric_names, MetricOptions(),
                                  cfg.storage_options)
            for s, (done, _) in zip(shards, states, strict=True) if not done}
    fs, root = resolve(cfg.output, cfg.storage_options)
    stats = {name: ray.get(ref) for name, ref in refs.items()}
    for s in shards:
        if s.name not in stats:
            stats[s.name] = read_shard_stats(fs, OutputLayout(root), s)
    if fs.exists(f"{root}/_parts") and not fs.find(f"{root}/_parts"):
        fs.rm(f"{root}/_parts", recursive=True)
    return stats


def main(argv=None) -> int:
    cfg = parse_config(TranslateConfig, argv)
    if not cfg.output:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        cfg = replace(cfg, output=os.path.join("outputs", stamp))
    cfg = with_absolute_paths(cfg, "input", "output", "model")
    cfg = replace(cfg, ensemble=[absolute_uri(u) for u in cfg.ensemble])
    print_config(cfg)

    from model.checkpoint import CheckpointError
    from pipeline.cluster import init_ray
    from pipeline.memory import peak_rss_mb
    from pipeline.metrics import MetricOptions
    from pipeline.report import build_report, write_report
    from pipeline.shards import InputError

    try:
        in_fs, out_fs, layout, shards, columns, model_config, states = plan_run(cfg)
    except (InputError, CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    skipped = sum(s.rows for s, (done, _) in zip(shards, states, strict=True) if done)
    skipped += sum(len(ids) for _, (done, ids) in zip(shards, states, strict=True) if not done)
    n_actors = cfg.actors or max(cfg.min_actors, cfg.max_actors, 1)
    init_ray(n_actors * cfg.cpus_per_actor + 4 * cfg.cpus_per_stage + 1)
    try:
        cfg = resolve_hardware(cfg)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t0 = time.time()
    run = run_pipeline(cfg, in_fs, shards, columns, states)
    stats = commit_all(cfg, shards, columns, states)
    seconds = time.time() - t0
    run.update(
        shards=len(shards), seconds=round(seconds, 2), skipped_sentences=skipped,
        sentences_per_second=round(run["sentences"] / seconds, 2) if seconds else 0.0,
        target_tokens_per_second=round(run["target_tokens"] / seconds, 2) if seconds else 0.0,
        padding_efficiency=round(run["source_tokens"] / run["padded_source_tokens"], 4)
        if run["padded_source_tokens"] else 1.0,
        driver_peak_rss_mb=round(peak_rss_mb(), 1),
        actor_decode_seconds=round(run["actor_decode_seconds"], 4),  # small runs decode in milliseconds
        # What one model actor sustains once running: the figure to size a pool with.
        sentences_per_actor_second=round(run["sentences"] / run["actor_decode_seconds"], 2)
        if run["actor_decode_seconds"] else 0.0,
        target_tokens_per_actor_second=round(run["target_tokens"] / run["actor_decode_seconds"], 2)
        if run["actor_decode_seconds"] else 0.0,
    )
    report = build_report(
        stats, MetricOptions(), run=run,
        model={"uri": cfg.model, "arch": model_config["arch"], "config": model_config["model"],
               "metadata": model_config.get("metadata", {}), "ensemble": cfg.ensemble},
        decode={k: getattr(cfg, k) for k in ("beam_size", "length_penalty", "alpha", "max_len_a", "max_len_b",
                                              "min_len", "nbest", "precision", "max_source_tokens", "long_policy")},
        config=redacted(cfg), created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_report(cfg.output, report, "Translation report", cfg.storage_options)
    overall = report["overall"]
    bleu = overall["scores"].get("bleu")
    print(f"translated {run['sentences']:,} sentences ({skipped:,} already done) in {len(shards)} shards "
          f"in {seconds:.1f} s ({run['target_tokens_per_second']:,.0f} target tokens/s, padding efficiency "
          f"{run['padding_efficiency']:.2f})")
    if run["actor_decode_seconds"]:
        # The run's time includes Ray's and the actors' start-up; this is the rate a running actor keeps.
        print(f"decoding: {run['sentences_per_actor_second']:,.1f} sentences per actor-second "
              f"({run['actor_decode_seconds']:.1f} actor-seconds, {cfg.precision}, beam {cfg.beam_size})")
    if bleu:
        print(f"BLEU {bleu['score']:.2f} on {overall['sentences']:,} sentences ({bleu['signature']})")
    print(f"output: {cfg.output}/translations/  report: {cfg.output}/report.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
