"""Translate sharded Parquet corpora with a pool of model actors on Ray Data; write translations and a report.

    python jobs/translate_corpus.py                      # the shipped sample, with the shipped model
    python jobs/translate_corpus.py --input s3://bucket/docs/date=2026-11-20/ --output s3://bucket/out/2026-11-20/
    ray job submit --working-dir . -- python jobs/translate_corpus.py --input ... --output ...

Re-running the same command after a failure finishes what is missing and
leaves finished shards untouched; a shard whose input changed since its commit
is brought in line with it (pipeline/output/resume.py). One run at a time writes an
output: a second one exits with status 3 naming the holder, or waits
(--wait-for-lease; pipeline/output/lease.py). See pipeline/output/layout.py for the output layout.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run as a script

from jobs.cli import parse_config, print_config, with_absolute_paths  # noqa: E402
from model.config_fields import arg, redacted  # noqa: E402
from pipeline.io import absolute_uri  # noqa: E402
from pipeline.output import LeaseConfig  # noqa: E402
from pipeline.scoring import BLEU_TOKENIZERS, parse_metrics  # noqa: E402
from pipeline.settings import ComputeConfig, TranslationSettings  # noqa: E402

SAMPLE_INPUT = os.path.join(ROOT, "samples", "multi30k-en-de")
DEFAULT_MODEL = os.path.join(ROOT, "models", "multi30k-en-de")


@dataclass(frozen=True)
class TranslateConfig:
    """Translate the `source` column of Parquet shards; write translations, report.json and report.md."""

    input: str = arg(SAMPLE_INPUT, help="Parquet file, directory/prefix or glob on any fsspec filesystem (a path "
                     "that exists is that path, even with [, * or ? in its name); defaults to the sample corpus "
                     "shipped in the repo")
    output: str = arg("", help="output directory/prefix; empty means ./outputs/<UTC timestamp>/")
    model: str = arg(DEFAULT_MODEL, help="model directory at any URI: one of our checkpoints or a Hugging Face "
                     "Marian/OPUS-MT directory (recognised from its config.json); defaults to the shipped model")
    ensemble: list[str] = arg([], help="more model directories (same vocabularies) to decode with --model as an "
                              "ensemble that averages their log-probabilities (repeatable)")
    model_for: list[str] = arg([], help="LANG=URI (repeatable): rows identified (--source-lang auto) or declared "
                               "(--source-lang-column) in LANG go to this model, in its own pool of model actors "
                               "sized by its share of the rows; --model takes the others")
    id_column: str = arg("id", help="unique row id column (string or integer)")
    source_column: str = arg("source", help="text to translate")
    reference_column: str = arg("reference", help="reference translations; scored when present")
    # Re-translating an earlier system's output table is an everyday case: its `translation` and `status`
    # would be written twice. Renamed, they stay beside the new ones (for --compare-column in scoring).
    rename_colliding_columns: str = arg("", help="prefix for input columns named like a column the job adds "
                                        "(such as translation or status; without it such an input is refused): "
                                        "with prev_, an input `translation` is written as `prev_translation`, and "
                                        "flags such as --source-column still name it `translation`")
    # What a translation is (search, precision, long sources, written columns): fixed for an output.
    translation: TranslationSettings = arg(TranslationSettings())
    # Where and how fast it runs: may change when resuming.
    compute: ComputeConfig = arg(ComputeConfig())
    # Not a translation setting: a run with or without it writes the same output (pipeline/memory/).
    memory: str = arg("", help="translation memory: a Lance dataset at any URI, shared by the runs that name it "
                      "(created if missing); segments it holds for this model and these settings take their "
                      "translation from it, the others are decoded and added when their shard commits "
                      "(jobs/compact_memory.py drops unused entries)")
    # scoring and output
    metrics: str = arg("bleu,chrf,ter", help="comma-separated metrics when a reference column exists ('' for none)")
    bleu_tokenize: str = arg("auto", help="BLEU tokenizer (sacreBLEU -tok); auto: 13a overall, and per language pair "
                             "sacreBLEU's choice for the target language (zh, ja-mecab, ko-mecab, else 13a)",
                             choices=["auto", *BLEU_TOKENIZERS])
    overwrite: bool = arg(False, help="delete --output first instead of resuming into it")
    # One run at a time per output (pipeline/output/lease.py).
    lease: LeaseConfig = arg(LeaseConfig())
    storage_options: dict = arg({}, help="JSON options for fsspec (e.g. endpoint_url); never logged")
    progress_interval: float = arg(30.0, help="seconds between progress lines (rows done of the total, rows/s, "
                                   "time left); in a terminal, one bar updated as often (0: only at start and end)")

    def __post_init__(self):
        parse_metrics(self.metrics)
        if self.model_for:
            from pipeline.languages import parse_model_for

            parse_model_for(self.model_for)
            if not (self.translation.languages.detect or self.translation.source_lang_column):
                raise ValueError("--model-for routes rows by their language: add --source-lang auto or "
                                 "--source-lang-column")
            if self.memory:
                raise ValueError("--model-for and --memory: not together yet (the memory is keyed by one model)")
        if self.translation.engine == "ctranslate2":  # fail here, not in every actor after Ray starts
            from pipeline.runtime import missing_packages

            if self.ensemble:
                raise ValueError("--engine ctranslate2 decodes single models; drop --ensemble or use --engine ours")
            if missing_packages():
                raise ValueError(f"--engine ctranslate2 needs {' and '.join(missing_packages())}: "
                                 "pip install -e '.[ctranslate2]'")

    @property
    def metric_names(self) -> tuple[str, ...]:
        return parse_metrics(self.metrics)

    @property
    def metric_options(self):
        from pipeline.scoring import MetricOptions

        return MetricOptions(bleu_tokenize="13a" if self.bleu_tokenize == "auto" else self.bleu_tokenize)


def hardware_for(cfg: TranslateConfig, gpus: float = 0.0, cpus: float = 1.0, cluster=None) -> TranslateConfig:
    """`cfg` with its automatic hardware values filled for `cluster` (a ClusterView; default: one node of
    `cpus` CPUs and `gpus` GPUs); ValueError if impossible."""
    from pipeline.settings import ClusterView, resolve_hardware

    translation, compute = resolve_hardware(cfg.translation, cfg.compute, cluster or ClusterView.of(gpus, cpus))
    return replace(cfg, translation=translation, compute=compute)


def describe_plan(asked: TranslateConfig, cfg: TranslateConfig, cluster) -> str:
    """One line on what the model actors are and why (the GPU decision is the one that costs)."""
    c, t = cfg.compute, cfg.translation
    pool = str(c.actors or (c.max_actors if c.min_actors == c.max_actors else f"{c.min_actors}-{c.max_actors}"))
    if c.gpus_per_actor:
        up = f"{cluster.gpus:g} up now"
        can = (f", up to {cluster.max_gpus:g} from the autoscaler's node types ({cluster.source})"
               if cluster.source else "")
        why = "--gpus-per-actor" if asked.compute.gpus_per_actor >= 0 else f"the cluster's GPUs ({up}{can})"
        return f"model actors: {pool} of {c.gpus_per_actor:g} GPU each, {t.precision}; chosen by {why}"
    grows = f" (the autoscaler's node types: {cluster.source})" if cluster.source else ""
    return (f"model actors: {pool} of {c.cpus_per_actor:g} CPU each, {t.precision}; nodes of "
            f"{', '.join(f'{n:g}' for n in cluster.node_cpus)} CPUs{grows}")


def fingerprint(cfg: TranslateConfig, models: list, columns, routes: list | None = None) -> dict:
    """What a resumed run must share with the run that started the output: every file of every model that
    decides a translation (weights and weight shards, configs, vocabularies, SentencePiece models), the
    columns, the metrics and every `TranslationSettings` value as the user gave it (hardware settings,
    and what --precision auto resolves to on them, may change)."""
    # Only when some are: outputs started before --rename-colliding-columns existed resume as they were.
    renamed = {"renamed_columns": dict(columns.renamed)} if columns.renamed else {}
    routed = {"model_for": {lang: info.files_sha256 for lang, info in routes}} if routes else {}
    return {"model_weights": [m.weights_sha256 for m in models], "model_files": [m.files_sha256 for m in models],
            "columns": [columns.id, columns.source, columns.reference], **renamed, **routed,
            "metrics": cfg.metrics, "bleu_tokenize": cfg.bleu_tokenize, **cfg.translation.fingerprint()}


@dataclass
class Plan:
    """What the driver found before any decoding."""

    in_fs: object
    shards: list
    columns: object
    model: object  # model.formats.registry.ModelInfo
    members: list  # ModelInfo of --ensemble members
    routes: list = field(default_factory=list)  # --model-for: (language, ModelInfo), in the order given


def inspect_inputs(cfg: TranslateConfig) -> Plan:
    """Input shards (columns, null and duplicate ids) and model configs; errors name what is wrong.

    Writes nothing, so a bad input fails with nothing written and no output deleted.
    """
    from model.formats import load_tokenizer, model_info
    from pipeline.inputs import check_unique_ids, discover_shards

    in_fs, shards, columns, _ = discover_shards(
        cfg.input, cfg.id_column, cfg.source_column, cfg.reference_column, cfg.storage_options,
        required=tuple(cfg.translation.languages.columns), rename_prefix=cfg.rename_colliding_columns)
    check_unique_ids(in_fs, shards, cfg.id_column)
    model = model_info(cfg.model, cfg.storage_options)
    check_languages(cfg.translation, load_tokenizer(cfg.model, cfg.storage_options), cfg.model, model.languages)
    members = [model_info(uri, cfg.storage_options) for uri in cfg.ensemble]
    return Plan(in_fs, shards, columns, model, members, route_models(cfg))


def route_models(cfg: TranslateConfig) -> list:
    """--model-for: (language, ModelInfo) per route, each model checked as --model is; a model whose files
    declare another source language than the one it is given for is refused."""
    from model.formats import load_tokenizer, model_info
    from pipeline.io import InputError
    from pipeline.languages import parse_model_for

    routes = []
    for lang, uri in parse_model_for(cfg.model_for):
        info = model_info(uri, cfg.storage_options)
        declared = model_languages(info).source
        if declared and declared != lang:
            raise InputError(f"--model-for {lang}={uri}: the model's files say it translates from {declared!r}")
        check_languages(cfg.translation, load_tokenizer(uri, cfg.storage_options), uri, info.languages)
        routes.append((lang, info))
    return routes


def check_languages(settings: TranslationSettings, tokenizer, uri: str, declared: dict | None = None) -> None:
    """A multilingual model needs target languages; a bilingual one has one, which --target-lang may name (rows
    identified in it are then same_language) but not contradict. A run-wide language the model lacks is an
    error now, while a row's unknown language only marks that row (unsupported_language)."""
    from pipeline.io import InputError
    from pipeline.languages import ModelLanguages, normalise_code

    if settings.multilingual and not tokenizer.multilingual:
        model_target = ModelLanguages.declared(None, (declared or {}).get("target")).target
        if settings.target_lang_column:
            raise InputError(f"model {uri} translates into one language: --target-lang-column needs a multilingual "
                             "model (M2M100, NLLB-200 or a multilingual OPUS-MT model)")
        if model_target and normalise_code(settings.target_lang) != model_target:
            raise InputError(f"model {uri} translates into {model_target!r} (its files say so), not --target-lang "
                             f"{settings.target_lang!r}")
    if tokenizer.needs_languages:
        if not settings.multilingual:
            raise InputError(f"model {uri} is multilingual: give the target language with --target-lang or "
                             "--target-lang-column")
        known = ", ".join(tokenizer.languages[:8]) + ", ..."
        source = settings.languages.fallback  # with --source-lang auto: the language of rows not identified
        if not settings.source_lang_column and source and tokenizer.language_token(source) is None:
            raise InputError(f"model {uri} has no source language {settings.source_lang!r} (--source-lang; it knows "
                             f"{len(tokenizer.languages)} languages: {known})")
        if not settings.target_lang_column and tokenizer.language_token(settings.target_lang) is None:
            raise InputError(f"model {uri} has no target language {settings.target_lang!r} (--target-lang; it knows "
                             f"{len(tokenizer.languages)} languages: {known})")


def model_languages(info):
    """The language pair a model's files declare (pipeline/languages/decide.py ModelLanguages)."""
    from pipeline.languages import ModelLanguages

    return ModelLanguages.declared(info.languages.get("source"), info.languages.get("target"))


def added_columns(settings: TranslationSettings) -> list:
    """The columns the job adds to the input's (pyarrow fields)."""
    from pipeline.columns import output_fields

    return output_fields(settings.decode.nbest, settings.write_scores, settings.write_segments,
                         detect=settings.languages.detect, flags=settings.quality_flags)


def claim(asked: TranslateConfig, cfg: TranslateConfig, plan: Plan):
    """Take the output (after --overwrite), refuse one made with other settings (`asked`: as the user gave
    them, "auto" included); return each shard's state (pipeline/output/resume.py ShardState), committed shards
    whose input changed since brought in line with it."""
    from model.storage import resolve
    from pipeline.documents import unit_for
    from pipeline.output import OutputLayout, ResumeContext, claim_output, clear_output, shard_state

    settings = cfg.translation
    out_fs, out_root = resolve(cfg.output, cfg.storage_options)
    if cfg.overwrite:
        clear_output(out_fs, out_root)
    layout = OutputLayout(out_root)
    claim_output(out_fs, layout, fingerprint(asked, [plan.model, *plan.members], plan.columns, plan.routes))
    ctx = ResumeContext(plan.in_fs, out_fs, layout, plan.columns, tuple(added_columns(settings)), unit_for(settings),
                        tuple(settings.languages.columns))
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda s: shard_state(ctx, s), plan.shards))


def reuse_spec(cfg: TranslateConfig, plan: Plan, board: str):
    """What the model actors may reuse: the memory (--memory), and the run's board (identical segments decoded
    once). Keyed by the resolved settings: a segment decoded in bf16 on a GPU is not an fp32 one's."""
    import ray

    from pipeline.memory import ReuseSpec, memory_fingerprint

    fingerprint = memory_fingerprint([m.files_sha256 for m in (plan.model, *plan.members)], cfg.translation)
    return ReuseSpec(fingerprint, cfg.memory, cfg.storage_options if cfg.memory else None, board,
                     ray.get_runtime_context().namespace)


def run_pipeline(cfg: TranslateConfig, plan: Plan, states, commits: Commits, pools: tuple[int, ...] = ()):
    """Translate what is missing, starting each shard's commit as soon as its last row is written;
    returns this run's statistics (a RunStats)."""

    from pipeline.columns import ROWS_DONE_COLUMN, SHARD_COLUMN, STATS_COLUMN
    from pipeline.output import Progress, RunStats, ShardProgress
    from pipeline.plan import ModelSpec, PipelinePlan, build_pipeline, read_shards

    shards = plan.shards
    todo = [s for s, state in zip(shards, states, strict=True) if not state.done and s.rows > len(state.ids)]
    progress = ShardProgress({s.name: s.rows - len(state.ids) for s, state in zip(shards, states, strict=True)
                              if not state.done})
    for name in progress.complete():  # every row was in part files already (a run died before its commit)
        commits.start(name)
    stats = RunStats()
    if todo:
        pipeline_plan = PipelinePlan(
            output_uri=cfg.output, columns=plan.columns, shard_names={s.path: s.name for s in todo},
            done_ids={s.path: state.ids for s, state in zip(shards, states, strict=True) if state.ids},
            input_versions={s.path: s.version.key() for s in todo if s.version is not None},
            model=ModelSpec(cfg.model, tuple(cfg.ensemble), cfg.storage_options, model_languages(plan.model)),
            translation=cfg.translation, compute=cfg.compute, reuse=commits.reuse,
            routes=route_specs(cfg, plan, commits.reuse), pool_sizes=pools)
        ds = read_shards([s.path for s in todo], plan.in_fs, cfg.compute, dict(plan.columns.renamed))
        written = watch_resources(cfg.compute)
        rows = "rows" if cfg.translation.unit == "sentence" else "documents"
        shown = Progress(int(sum(progress.left[s.name] for s in todo)), cfg.progress_interval, rows).start()
        try:
            for batch in build_pipeline(ds, pipeline_plan).iter_batches(batch_format="pyarrow", batch_size=None):
                written.set()
                columns = (batch.column(c).to_pylist() for c in (STATS_COLUMN, SHARD_COLUMN, ROWS_DONE_COLUMN))
                for text, shard, rows_done in zip(*columns, strict=True):
                    stats = stats.merge(RunStats.from_json(text))
                    shown.add(rows_done)
                    if progress.add(shard, rows_done):
                        commits.start(shard)
        finally:
            written.set()
            shown.stop()
    return stats, len(todo)


def route_specs(cfg: TranslateConfig, plan: Plan, reuse) -> tuple:
    """--model-for: each route's model, with the run's board keyed by that model's files (identical segments
    of two models are not the same translation)."""
    from pipeline.languages import ModelLanguages
    from pipeline.memory import memory_fingerprint
    from pipeline.plan import ModelSpec, RouteSpec

    specs = []
    for lang, info in plan.routes:
        own = replace(reuse, fingerprint=memory_fingerprint([info.files_sha256], cfg.translation)) if reuse else None
        target = model_languages(info).target
        model = ModelSpec(absolute_uri(uri_for(cfg, lang)), (), cfg.storage_options, ModelLanguages(lang, target))
        specs.append(RouteSpec(lang, model, own))
    return tuple(specs)


def uri_for(cfg: TranslateConfig, lang: str) -> str:
    from pipeline.languages import parse_model_for

    return dict(parse_model_for(cfg.model_for))[lang]


def route_pools(cfg: TranslateConfig, plan: Plan) -> tuple[int, ...]:
    """--model-for: model actors per route (route 0 first), split by each route's share of a sample of rows;
    () without routes."""
    if not plan.routes:
        return ()
    from pipeline.languages import pool_sizes

    shares = route_shares(cfg, plan)
    sizes = tuple(pool_sizes(shares, cfg.compute.actors or cfg.compute.max_actors))
    names = ["--model", *(lang for lang, _ in plan.routes)]
    print("model actors by route: " + ", ".join(f"{n} {k} ({s:.0%} of sampled rows)"
                                                 for n, k, s in zip(names, sizes, shares, strict=True)), flush=True)
    return sizes


def route_shares(cfg: TranslateConfig, plan: Plan, sample_rows: int = 2000) -> list[float]:
    """Each route's share of the rows (route 0 first), from up to `sample_rows` rows read from the first
    shards' heads and their languages (declared, else identified as the pipeline does)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.languages import Routes, detect_languages

    settings, columns = cfg.translation, plan.columns
    tables, left = [], sample_rows
    for shard in plan.shards[:8]:
        if left <= 0:
            break
        names = [c for c in (columns.source, *settings.languages.columns) if c]
        with plan.in_fs.open(shard.path, "rb") as fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=min(left, 1000), columns=names):
                tables.append(pa.Table.from_batches([batch]))
                left -= batch.num_rows
                break
    if not tables:
        return [1.0] * (1 + len(plan.routes))
    table = pa.concat_tables(tables, promote_options="permissive")
    if settings.languages.detect:
        table = detect_languages(table, columns.source, settings.lang_confidence)
    routes = Routes(tuple(lang for lang, _ in plan.routes)).of(settings.languages.of_rows(table)[0])
    return [routes.count(r) / len(routes) for r in range(1 + len(plan.routes))]


def watch_resources(compute, every: float = 120.0):
    """Until the returned event is set (the first part file written), say every `every` seconds what the
    cluster has free: on a cluster shared with other jobs the model actors wait for resources those hold,
    and the run should say so rather than look hung."""
    import threading

    import ray

    from pipeline.cluster import resource_note

    written = threading.Event()

    def watch():
        waited = 0.0
        while not written.wait(every):
            waited += every
            try:
                note = resource_note(waited, compute.cpus_per_actor, compute.gpus_per_actor,
                                     ray.available_resources(), ray.cluster_resources())
            except Exception:  # noqa: BLE001  (only a note; Ray may be shutting down)
                return
            print(note, flush=True)

    threading.Thread(target=watch, name="resource-watch", daemon=True).start()
    return written


class Commits:
    """The commits of every unfinished shard (Ray tasks, in parallel).

    A shard's commit starts as soon as all its rows are in part files (`start`), while the actors
    decode the other shards, so that only the last shards' commits follow the last batch; `finish`
    commits the rest. One shard's failure does not stop the others: their output and the report
    are still written, and a re-run retries only what failed. Part files of committed shards are
    removed, including ones left by a run that died between committing a shard and removing its parts.
    """

    def __init__(self, cfg: TranslateConfig, plan: Plan, states, reuse=None):
        import ray

        from pipeline.documents import unit_for
        from pipeline.output import FlagSpec, commit_shard

        settings = cfg.translation
        added = added_columns(settings)
        commit = ray.remote(num_cpus=cfg.compute.cpus_per_stage)(commit_shard)
        languages = settings.languages if settings.multilingual or settings.languages.detect else None
        memory = (reuse, settings.languages) if reuse is not None and reuse.memory_uri else None
        flags = (FlagSpec(settings.languages, model_languages(plan.model).target, settings.lang_confidence)
                 if settings.quality_flags else None)
        self._launch = lambda shard: commit.remote(
            shard, cfg.input, cfg.output, plan.columns, added, cfg.metric_names, cfg.metric_options,
            cfg.storage_options, unit_for(settings), languages, cfg.bleu_tokenize, memory, flags)
        self.cfg, self.plan, self.reuse = cfg, plan, reuse
        self.committed_now: set[str] = set()  # shards this run committed (their stats say what it wrote)
        self.unfinished = {s.name: s for s, state in zip(plan.shards, states, strict=True) if not state.done}
        self.early: dict = {}  # shard name -> ObjectRef of a commit started during the pipeline

    def start(self, name: str) -> None:
        if name not in self.early:
            self.early[name] = self._launch(self.unfinished[name])

    def finish(self) -> tuple[dict[str, dict], dict[str, str]]:
        """(statistics of every committed shard, error per shard that failed)."""

        from model.storage import resolve
        from pipeline.io import remove
        from pipeline.output import OutputLayout, read_shard_stats

        late = {name: self._launch(shard) for name, shard in self.unfinished.items() if name not in self.early}
        stats, failed = {}, {}
        for name, ref in {**self.early, **late}.items():
            result, error = _get(ref)
            if error is not None and name in self.early:  # once more, now that nothing is being written
                result, error = _get(self._launch(self.unfinished[name]))
            if error is None:
                stats[name] = result
                self.committed_now.add(name)
            else:
                cause = getattr(error, "cause", None) or error  # a RayTaskError wraps the shard's own error
                failed[name] = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
        fs, root = resolve(self.cfg.output, self.cfg.storage_options)
        layout = OutputLayout(root)
        for s in self.plan.shards:
            if s.name in failed:
                continue
            if s.name not in stats:
                stats[s.name] = read_shard_stats(fs, layout, s)
            if fs.exists(layout.parts(s.name)):
                remove(fs, layout.parts(s.name))
        if fs.exists(f"{root}/_parts") and not fs.find(f"{root}/_parts"):
            remove(fs, f"{root}/_parts")
        return stats, failed


def _get(ref):
    """(the task's result, None), or (None, the exception it raised)."""
    import ray

    try:
        return ray.get(ref), None
    except Exception as e:  # noqa: BLE001  (reported per shard, not raised)
        return None, e


def main(argv=None) -> int:
    started = time.time()
    cfg = parse_config(TranslateConfig, argv)
    if not cfg.output:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        cfg = replace(cfg, output=os.path.join("outputs", stamp))
    cfg = with_absolute_paths(cfg, "input", "output", "model")
    cfg = replace(cfg, ensemble=[absolute_uri(u) for u in cfg.ensemble])
    print_config(cfg)

    from model.errors import CheckpointError
    from pipeline.io import InputError
    from pipeline.output import HELD_EXIT_STATUS, LeaseHeld

    try:
        plan = inspect_inputs(cfg)
    except (InputError, CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        lease = take_lease(cfg)
    except LeaseHeld as e:
        print(f"error: {e}", file=sys.stderr)
        return HELD_EXIT_STATUS
    except OSError as e:  # no right to write there, no such bucket
        print(f"error: cannot write the lease in {cfg.output} ({type(e).__name__}: {e})", file=sys.stderr)
        return 2
    try:
        return translate_and_report(cfg, plan, started)
    except KeyboardInterrupt:
        if lease.lost is None:
            raise
        print(f"error: another run took over {cfg.output} ({lease.lost.describe(time.time())}) while this one could "
              "not renew its lease; this run stopped, and what it committed stays", file=sys.stderr)
        return 1
    finally:
        lease.release()


def take_lease(cfg: TranslateConfig):
    """This run's lease on --output (pipeline/output/lease.py), its heartbeat started; LeaseHeld if another run
    keeps it."""
    import _thread
    import signal
    import threading

    from model.storage import resolve
    from pipeline.output import Lease, lease_store

    out_fs, out_root = resolve(cfg.output, cfg.storage_options)
    store = lease_store(out_fs, out_root)
    lease = Lease(store, cfg.output, cfg.lease.lease_timeout)
    lease.acquire(cfg.lease.wait_for_lease, on_wait=lambda line: print(line, flush=True))
    if lease.took_over is not None:
        print(f"note: took over the lease of a run that is gone ({lease.took_over.describe(time.time())})", flush=True)
    if not store.atomic:
        print(f"warning: {cfg.output} is on a store without conditional writes here: the lease that keeps a second "
              "run out is best effort", file=sys.stderr)
    if threading.current_thread() is threading.main_thread():
        # `ray job stop` and `kill` send SIGTERM: exit through the `finally` that releases the lease (ray.init
        # installs the same handler; this covers the seconds before it).
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    # A run that lost its lease (it stalled past the timeout and another run took over) must stop writing.
    lease.start_heartbeat(on_lost=lambda holder: _thread.interrupt_main())
    return lease


def translate_and_report(cfg: TranslateConfig, plan: Plan, started: float | None = None) -> int:
    """Everything after the checks, under this run's lease: Ray, the plan, the pipeline, commits, the report.
    `started`: when the job began (its checks and Ray's start-up count in run.wall_seconds, not in run.seconds)."""
    from pipeline.cluster import cluster_view, init_ray
    from pipeline.inputs import RowChanges
    from pipeline.io import InputError
    from pipeline.runtime import peak_rss_mb
    from pipeline.scoring import build_report, language_pair_entries, write_report

    # A local instance: every core for model actors (CPU actors default to one per core) plus the
    # other stages' slots; logical CPUs are scheduling slots, not threads.
    compute = cfg.compute
    routes = 1 + len(plan.routes)  # --model-for: at least one actor per route
    init_ray(max(max(compute.model_actors, routes) * compute.cpus_per_actor, os.cpu_count() or 1)
             + compute.stage_cpus)
    try:
        # What the cluster has and can grow to decides the actors: GPU node types that scale from zero
        # are not up when a nightly run starts.
        asked = cfg
        cluster = cluster_view()
        cfg = hardware_for(cfg, cluster=cluster)
        states = claim(asked, cfg, plan)
        cfg = fitted_to_input(cfg, plan, states)
        print(describe_plan(asked, cfg, cluster), flush=True)
        memory = open_memory(cfg)
    except (InputError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # Rows done before this run: every row of a finished shard, and the rows of the others already in part
    # files or kept from a commit of an earlier version of their input (all of them in the output once committed).
    skipped = sum(s.rows if st.done else len(st.ids) for s, st in zip(plan.shards, states, strict=True))
    changes = {s.name: st.changes for s, st in zip(plan.shards, states, strict=True) if st.changes is not None}
    t0 = time.time()
    from pipeline.memory import start_board

    board = f"segment-board-{uuid.uuid4().hex[:12]}"
    board_actor = start_board(board)  # noqa: F841  (held: an actor lives while a handle to it does)
    commits = Commits(cfg, plan, states, reuse_spec(cfg, plan, board))
    pools = route_pools(cfg, plan)
    stats, translated_shards = run_pipeline(cfg, plan, states, commits, pools)
    shard_stats, failed = commits.finish()
    seconds = time.time() - t0
    run = stats.summary(seconds)
    if memory is not None:
        run["memory"] = memory_summary(memory, stats, {n: shard_stats[n] for n in commits.committed_now})
    run.update(shards=len(plan.shards), shards_translated=translated_shards, skipped_sentences=skipped,
               wall_seconds=round(time.time() - (started or t0), 2), driver_peak_rss_mb=round(peak_rss_mb(), 1))
    if changes:
        total = sum(changes.values(), RowChanges())
        run["input_changes"] = {**total.as_dict(), "shards": {n: c.as_dict() for n, c in sorted(changes.items())}}
    gone = shards_not_in_input(cfg, plan)
    if gone:
        run["shards_not_in_input"] = gone
    if failed:
        run["failed_shards"] = failed
    settings = cfg.translation
    pairs = ({"language_pairs": language_pair_entries(shard_stats, cfg.metric_options)}
             if settings.multilingual or settings.languages.detect else {})
    report = build_report(
        shard_stats, cfg.metric_options, **pairs, run=run,
        model=model_entry(cfg, plan), decode=settings.fingerprint(),
        config=redacted(cfg), created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_report(cfg.output, report, "Translation report", cfg.storage_options)
    documents = sum(s.rows - len(st.ids) for s, st in zip(plan.shards, states, strict=True)
                    if not st.done and s.name in commits.committed_now)
    print_summary(cfg, report, len(plan.shards), failed, documents)
    return 1 if failed else 0


MODEL_CARD = "README.md"  # in a model directory: its card (training, evaluation, recipes)


def model_entry(cfg: TranslateConfig, plan: Plan) -> dict:
    """The report's `model`: what decoded, and where its card is. The card itself (training history,
    evaluations, recipes: most of the checkpoint's metadata) stays with the model, referenced, not copied."""
    from model.storage import resolve
    from pipeline.languages import parse_model_for

    fs, root = resolve(cfg.model, cfg.storage_options)
    card = f"{cfg.model.rstrip('/')}/{MODEL_CARD}" if fs.exists(f"{root}/{MODEL_CARD}") else None
    return {"uri": cfg.model, "name": plan.model.metadata.get("name") or os.path.basename(cfg.model.rstrip("/")),
            "card": card, "format": plan.model.format, "arch": plan.model.arch, "config": plan.model.config,
            "weights_sha256": plan.model.weights_sha256, "ensemble": cfg.ensemble,
            **({"model_for": dict(parse_model_for(cfg.model_for))} if cfg.model_for else {})}


def fitted_to_input(cfg: TranslateConfig, plan: Plan, states) -> TranslateConfig:
    """`cfg` with the model actors' pool and calls sized to the rows this run translates (pipeline/settings.py
    fit_to_input): its pending sentences, or the segments its pending documents are estimated to hold."""
    from pipeline.settings import fit_to_input

    pending = [(s, st) for s, st in zip(plan.shards, states, strict=True) if not st.done]
    rows = sum(s.rows - len(st.ids) for s, st in pending)
    if pending and cfg.translation.unit != "sentence":
        rows = estimated_segments(cfg, plan, pending[0][0], rows)
    return replace(cfg, compute=fit_to_input(cfg.compute, rows))


SAMPLED_DOCUMENTS = 200


def estimated_segments(cfg: TranslateConfig, plan: Plan, shard, documents: int) -> int:
    """The segments `documents` will be cut into, from the first SAMPLED_DOCUMENTS documents of `shard` cut by
    the run's reader (the model actors see segments, not documents: without it a 40-page run went in one
    call to one of two actors). Sentence rules of English for all: the count barely depends on them. The
    estimate only sizes a small run's calls and pool; a large run keeps its --batch-rows."""
    from pipeline.documents import unit_for
    from pipeline.inputs import decode_texts
    from pipeline.io import read_file_blocks

    source = plan.columns.in_input([plan.columns.source])[0]
    sample = next(read_file_blocks(plan.in_fs, shard.path, SAMPLED_DOCUMENTS, columns=[source]), None)
    if sample is None or sample.num_rows == 0:
        return documents
    unit = unit_for(cfg.translation)
    texts = decode_texts(sample.column(0))[0]
    per_document = sum(len(unit.layout(text, "en").segments) for text in texts) / len(texts)
    return max(1, round(documents * per_document))


def open_memory(cfg: TranslateConfig):
    """The translation memory of --memory, created if missing (None without one); ValueError if it cannot be."""
    if not cfg.memory:
        return None
    from pipeline.memory import TranslationMemory

    memory = TranslationMemory(cfg.memory, cfg.storage_options)
    try:
        memory.create_if_missing()
    except Exception as e:  # noqa: BLE001  (Lance raises several kinds; all mean the same to the user)
        raise ValueError(f"--memory {cfg.memory}: cannot open or create a Lance dataset there ({type(e).__name__}: "
                         f"{e})") from e
    return memory


def memory_summary(memory, stats, committed: dict[str, dict]) -> dict:
    """The report's run.memory: rows of this run taken from the memory (hits) or looked up in vain (misses:
    decoded, or copied from an identical segment decoded in this run), and entries the shards committed by
    this run wrote (new) and refreshed (reused). The memory's key index is brought up to date last."""
    from pipeline.memory import REUSE_DECODED, REUSE_DUPLICATE, REUSE_MEMORY

    written = {k: sum(s.get("memory", {}).get(k, 0) for s in committed.values()) for k in ("written", "refreshed")}
    failed = {name: s["memory"]["error"] for name, s in committed.items() if "error" in s.get("memory", {})}
    for name, error in sorted(failed.items()):
        print(f"warning: shard {name} was committed but its translations were not written to the memory ({error})",
              file=sys.stderr)
    summary = {"uri": memory.uri, "hits": stats.reuse.get(REUSE_MEMORY, 0),
               "misses": stats.reuse.get(REUSE_DECODED, 0) + stats.reuse.get(REUSE_DUPLICATE, 0), **written,
               **({"failed_shards": failed} if failed else {})}
    try:
        memory.index()
    except Exception as e:  # noqa: BLE001  (lookups stay right without an up-to-date index, only slower)
        print(f"note: the memory's key index was not updated ({type(e).__name__}: {e}); the next run or "
              "jobs/compact_memory.py updates it", file=sys.stderr)
    return summary


def shards_not_in_input(cfg: TranslateConfig, plan: Plan) -> list[str]:
    """Committed shards of the output whose input file is no longer there (removed upstream, or a narrower
    --input). They are left as they are, and are not in this run's report."""
    import posixpath

    from model.storage import resolve

    fs, root = resolve(cfg.output, cfg.storage_options)
    stats_dir = f"{root}/_stats"
    if not fs.exists(stats_dir):
        return []
    committed = {posixpath.relpath(p, stats_dir)[: -len(".json")] for p in fs.find(stats_dir) if p.endswith(".json")}
    return sorted(committed - {s.name for s in plan.shards})


def print_summary(cfg: TranslateConfig, report: dict, shards: int, failed: dict[str, str], documents: int = 0
                  ) -> None:
    """The job's last lines: what was done, how fast, row statuses, the score, what changed in the input, failed
    shards, and last where it went. In document mode rows are documents, and the model's rows are segments."""
    run, overall, settings = report["run"], report["overall"], cfg.translation
    bleu = overall["scores"].get("bleu")
    sentence_mode = settings.unit == "sentence"
    rows = "sentences" if sentence_mode else "segments"
    units = "sentences" if sentence_mode else "documents"
    done = (f"{run['sentences']:,} sentences" if sentence_mode
            else f"{documents:,} documents in {run['sentences']:,} segments")
    print(f"translated {done} ({run['skipped_sentences']:,} {units} already done) in {shards} shards in "
          f"{run['seconds']:.1f} s ({run['target_tokens_per_second']:,.0f} target tokens/s, padding efficiency "
          f"{run['padding_efficiency']:.2f})")
    if run["actor_decode_seconds"]:
        # The run's time includes Ray's and the actors' start-up; this is the rate a running actor keeps.
        print(f"decoding: {run['sentences_per_actor_second']:,.1f} {rows} per actor-second "
              f"({run['actor_decode_seconds']:.1f} actor-seconds, {settings.precision}, "
              f"beam {settings.decode.beam_size}, engine {settings.engine})")
    print(status_line(overall, "sentences" if sentence_mode else "documents"))
    reused = [f"{run['duplicate_segments']:,} {rows} copied from identical ones decoded in this run"]
    if "memory" in run:
        m = run["memory"]
        reused.insert(0, f"memory {m['hits']:,} hits, {m['misses']:,} misses, {m['written']:,} entries written")
    print("reuse: " + "; ".join(reused))
    if bleu:
        scored = "sentences" if sentence_mode else "documents (document-level, whitespace normalised)"
        print(f"BLEU {bleu['score']:.2f} on {overall['sentences']:,} {scored} ({bleu['signature']})")
    decoded_with = overall.get("decoded_with", {})
    if len(decoded_with) > 1:  # --precision auto on other hardware than the run that started the output
        print("note: rows were decoded in more than one precision ("
              + ", ".join(f"{p} {n:,}" for p, n in decoded_with.items())
              + "): the output was resumed on other hardware; --precision fixes one", file=sys.stderr)
    changed = run.get("input_changes")
    if changed:
        print(f"input changed since its commit in {len(changed['shards'])} shard(s): {changed['added']:,} {units} "
              f"added and {changed['edited']:,} edited (translated now), {changed['removed']:,} removed (dropped from "
              f"the output), {changed['kept']:,} kept")
    gone = run.get("shards_not_in_input")
    if gone:
        print(f"note: the output holds {len(gone)} committed shard(s) whose input file is gone ({', '.join(gone[:3])}"
              f"{', ...' if len(gone) > 3 else ''}): left as they are and not in this report; delete them from "
              "translations/ and _stats/, or use --overwrite", file=sys.stderr)
    sys.stdout.flush()  # the error lines below go to stderr: keep them after what was printed above
    for name, error in sorted(failed.items()):
        print(f"error: shard {name} was not committed ({error}); re-run the same command to finish it",
              file=sys.stderr)
    sys.stderr.flush()
    print(f"output: {cfg.output}/translations/  report: {cfg.output}/report.json (and report.md)")


def status_line(overall: dict, rows: str) -> str:
    """`status: 300 sentences in the output: ok 298, empty 1, split 1, truncated 0, ...`: every status of
    pipeline/columns.py RowStatus, zeros included, so a reader sees what was checked for."""
    from pipeline.columns import RowStatus

    counts = overall.get("status", {})
    known = [f"{s.value} {counts.get(s.value, 0):,}" for s in RowStatus]
    other = [f"{k} {v:,}" for k, v in sorted(counts.items()) if k not in {s.value for s in RowStatus}]
    return f"status: {overall['sentences']:,} {rows} in the output: " + ", ".join(known + other)

if __name__ == "__main__":
    sys.exit(main())
