"""Score system outputs against references at corpus scale: sacreBLEU BLEU/chrF/TER, per group,
with bootstrap confidence intervals and paired significance between two systems.

    python jobs/score_corpus.py --input s3://bucket/outputs/ --output s3://bucket/scores/ \\
        --group-by lang_pair,domain --confidence --compare-column baseline_translation

Writes report.json, report.md, scores_by_group.png, scores_by_length.png and, with
--sentence-scores, the input rows plus sentence-level BLEU/chrF as Parquet under sentence_scores/.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script

from jobs.cli import parse_config, print_config, with_absolute_paths  # noqa: E402
from model.config_fields import arg, redacted  # noqa: E402
from pipeline.scoring import BLEU_TOKENIZERS, parse_metrics  # noqa: E402


@dataclass(frozen=True)
class ScoreConfig:
    """Score a hypothesis column against reference column(s) with sacreBLEU, at scale, per group."""

    input: str = arg(help="Parquet file, directory/prefix or glob (any fsspec URI)")
    output: str = arg(help="output directory/prefix for report.json, report.md, charts, sentence scores")
    hypothesis_column: str = arg("translation", help="system output column")
    reference_column: list[str] = arg(["reference"], help="reference column; repeat for several references, "
                                      "or name one list<string> column")
    group_by: str = arg("", help="comma-separated columns; scores per distinct combination (e.g. lang_pair,domain)")
    id_column: str = arg("", help="row id column, checked to exist and kept in sentence scores")
    source_column: str = arg("source", help="source text, for the score-by-length chart (the first reference is "
                             "used when this column is absent)")
    compare_column: str = arg("", help="a second system's outputs in the same rows: paired bootstrap test")
    metrics: str = arg("bleu,chrf,ter", help="comma-separated subset of bleu,chrf,ter")
    chrf_plus: bool = arg(False, help="chrF++ (word bigrams) instead of chrF")
    tokenize: str = arg("13a", help="BLEU tokenizer (sacreBLEU -tok)", choices=BLEU_TOKENIZERS)
    lowercase: bool = arg(False, help="case-insensitive BLEU and chrF (sacreBLEU -lc)")
    ter_normalized: bool = arg(False, help="TER: normalize punctuation and tokenize")
    ter_case_sensitive: bool = arg(False, help="TER: case-sensitive")
    confidence: bool = arg(False, help="95%% bootstrap confidence intervals for every score")
    bootstrap_samples: int = arg(1000, help="bootstrap resamples for intervals and the paired test")
    seed: int = arg(12345, help="bootstrap seed (sacreBLEU's default)")
    sentence_scores: bool = arg(False, help="also write the input rows with sentence_bleu/sentence_chrf columns")
    charts: bool = arg(True, help="write PNG charts")
    batch_rows: int = arg(20000, help="rows per scoring call")
    actors: int = arg(0, help="scoring actors (0: one per CPU in the cluster)")
    storage_options: dict = arg({}, help="JSON options for fsspec (e.g. endpoint_url); never logged")

    def __post_init__(self):
        if not parse_metrics(self.metrics):
            raise ValueError("--metrics must name at least one of bleu, chrf, ter")
        if self.bootstrap_samples < 2:
            raise ValueError("--bootstrap-samples must be >= 2")

    @property
    def metric_names(self) -> tuple[str, ...]:
        return parse_metrics(self.metrics)

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(c.strip() for c in self.group_by.split(",") if c.strip())


def check_columns(cfg: ScoreConfig) -> tuple[object, list[str], list[str], str | None]:
    """List the input and check every named column from the Parquet footers, before any work."""
    from pipeline.io import list_parquet_files, read_footers

    fs, files = list_parquet_files(cfg.input, cfg.storage_options)
    schemas = [m.schema.to_arrow_schema() for m in read_footers(fs, files)]
    required = [cfg.hypothesis_column, *cfg.reference_column, *cfg.groups]
    required += [c for c in (cfg.compare_column, cfg.id_column) if c]
    for path, s in zip(files, schemas, strict=True):
        for col in required:
            if col not in s.names:
                raise ValueError(f"{fs.unstrip_protocol(path)}: missing column {col!r} (columns: {s.names})")
    length = cfg.source_column if all(cfg.source_column in s.names for s in schemas) else cfg.reference_column[0]
    needed = list(dict.fromkeys(required + [length]))
    return fs, files, needed, length


def make_spec(cfg: ScoreConfig, length_column: str | None):
    from pipeline.scoring import MetricOptions, ScoreSpec

    options = MetricOptions(bleu_tokenize=cfg.tokenize, lowercase=cfg.lowercase,
                            chrf_word_order=2 if cfg.chrf_plus else 0, ter_normalized=cfg.ter_normalized,
                            ter_case_sensitive=cfg.ter_case_sensitive)
    bootstrap = cfg.bootstrap_samples if (cfg.confidence or cfg.compare_column) else 0
    return ScoreSpec(hypothesis=cfg.hypothesis_column, references=tuple(cfg.reference_column), group_by=cfg.groups,
                     compare=cfg.compare_column or None, length_column=length_column, metrics=cfg.metric_names,
                     options=options, bootstrap=bootstrap, seed=cfg.seed)


READ_CPUS = 0.25  # a read task's share of a CPU: reading waits on storage, and any node's leftover fits it


def read_blocks(cfg: ScoreConfig, fs, files, columns: list[str] | None = None):
    """The input as blocks of one actor call each.

    Ray Data's reader packs row groups into ~128 MiB blocks and an actor takes a whole block, so a
    300,000-row table was a single block, scored by one actor while the others idled. Read in blocks
    of --batch-rows, the calls spread over every actor (pipeline/io.py read_parquet_files).
    """
    from pipeline.io import read_parquet_files

    return read_parquet_files(files, fs, cfg.batch_rows, READ_CPUS, columns=columns or None)


def scoring_actor_pool(cfg: ScoreConfig):
    """A fixed pool: --actors, or one per cluster CPU but one (left to reading and the driver)."""
    import ray

    actors = cfg.actors or max(1, int(ray.cluster_resources().get("CPU", 1)) - 1)
    return ray.data.ActorPoolStrategy(size=actors)


def score(cfg: ScoreConfig, fs, files, needed, spec):
    from pipeline.scoring import Accumulator, ScoreBatch

    ds = read_blocks(cfg, fs, files, needed)
    ds = ds.map_batches(ScoreBatch, fn_constructor_kwargs={"spec": spec}, batch_size=cfg.batch_rows,
                        batch_format="pyarrow", compute=scoring_actor_pool(cfg), num_cpus=1)
    acc = Accumulator()
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        acc.add(batch)
    return acc


def write_sentence_scores(cfg: ScoreConfig, fs, files, spec) -> str:
    from model.storage import resolve
    from pipeline.io import join, pyarrow_filesystem, remove
    from pipeline.scoring import SentenceScores

    out_fs, out = resolve(join(cfg.output, "sentence_scores"), cfg.storage_options)
    if out_fs.exists(out):
        remove(out_fs, out)
    ds = read_blocks(cfg, fs, files).map_batches(SentenceScores, fn_constructor_kwargs={"spec": spec},
                                                 batch_format="pyarrow", compute=scoring_actor_pool(cfg),
                                                 batch_size=cfg.batch_rows, num_cpus=1)
    ds.write_parquet(out, filesystem=pyarrow_filesystem(out_fs))
    return join(cfg.output, "sentence_scores")


def write_charts(cfg: ScoreConfig, report: dict) -> list[str]:
    from model.storage import resolve
    from pipeline.io import write_bytes_atomic
    from pipeline.scoring import bar_chart

    fs, root = resolve(cfg.output, cfg.storage_options)
    metric = cfg.metric_names[0]
    written = []
    for name, entries, title in (("scores_by_group.png", report["groups"], f"{metric.upper()} per group"),
                                 ("scores_by_length.png", report["length_buckets"],
                                  f"{metric.upper()} by {report['length_column']} length")):
        if not entries:
            continue
        labels = list(entries)
        scores = [entries[k]["scores"][metric]["score"] for k in labels]
        halves = [entries[k]["scores"][metric].get("bootstrap", {}).get("ci95_halfwidth", 0.0) for k in labels]
        png = bar_chart(title, [f"{k} ({entries[k]['sentences']:,})" for k in labels], scores,
                        halves if any(halves) else None, metric.upper())
        write_bytes_atomic(fs, f"{root}/{name}", png)
        written.append(name)
    return written


def main(argv=None) -> int:
    cfg = with_absolute_paths(parse_config(ScoreConfig, argv), "input", "output")
    print_config(cfg)
    from pipeline.cluster import init_ray
    from pipeline.runtime import peak_rss_mb
    from pipeline.scoring import finalize, write_report

    try:
        fs, files, needed, length_column = check_columns(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    spec = make_spec(cfg, length_column)
    init_ray(4)
    t0 = time.time()
    acc = score(cfg, fs, files, needed, spec)
    overall = acc.overall()
    if not overall["sentences"]:
        print(f"error: no rows in {cfg.input}", file=sys.stderr)
        return 2
    seconds = time.time() - t0
    report = {
        "overall": finalize(overall, spec),
        "groups": {k: finalize(v, spec) for k, v in acc.kind("group").items()} if cfg.groups else {},
        "group_by": list(cfg.groups),
        "length_column": length_column,
        "length_buckets": {k: finalize(v, spec) for k, v in acc.kind("length").items()},
        "run": {"sentences": overall["sentences"], "files": len(files), "seconds": round(seconds, 2),
                "sentences_per_second": round(overall["sentences"] / seconds, 1),
                "driver_peak_rss_mb": round(peak_rss_mb(), 1), "actor_peak_rss_mb": round(acc.actor_peak_rss_mb, 1),
                "actor_peak_private_mb": round(acc.actor_peak_private_mb, 1), **acc.actor_memory()},
        "config": redacted(cfg),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if cfg.sentence_scores:
        report["sentence_scores"] = write_sentence_scores(cfg, fs, files, spec)
    if cfg.charts:
        report["charts"] = write_charts(cfg, report)
    write_report(cfg.output, report, "Score report", cfg.storage_options)
    line = ", ".join(f"{m.upper()} {s['score']:.2f}" for m, s in report["overall"]["scores"].items())
    print(f"scored {overall['sentences']:,} sentences in {seconds:.1f} s: {line}")
    print(f"report: {cfg.output}/report.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
