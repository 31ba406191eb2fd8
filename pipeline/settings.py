"""The translation pipeline's typed settings, in two groups with different resume rules.

`TranslationSettings` decides what a translation *is*: the search, the
precision it decodes at, how long sources are cut, which columns are written.
A resumed output must keep every one of them, so the resume fingerprint and
the report's `decode` block are generated from this dataclass.

`ComputeConfig` decides where and how fast the work runs: actor counts, CPUs,
GPUs, batch sizes. It may change between a run and its resume.

Both hold "automatic" values (`precision="auto"`, `gpus_per_actor=-1`, ...)
until `resolve_hardware` fills them from the cluster. The resume fingerprint holds
the settings as the user gave them ("auto" included); what each row decoded in is
recorded with it (pipeline/stages/write.py) and counted in the report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from model.config_fields import arg, leaf_values
from model.decoding import DecodeConfig

CPU_BLAS = ("auto", "torch", "openblas", "onednn")  # pipeline/runtime/blas.py, which needs torch, resolves them

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")


def check_precision(precision: str, on_gpu: bool) -> None:
    """Where each precision runs, checked where a run is planned and again where a model actor starts:
    int8 (fp32 weights, linear layers quantized) is for CPU actors, fp16 for GPUs."""
    if precision == "int8" and on_gpu:
        raise ValueError("--precision int8 is for CPU actors (--gpus-per-actor 0); on GPUs use bf16 or fp16")
    if precision == "fp16" and not on_gpu:
        raise ValueError("--precision fp16 needs a GPU; use bf16 or fp32 on CPU")
UNITS = ("sentence", "document")
FORMATS = ("text", "html", "markdown")  # what a document is, with --unit document (pipeline/documents/units.py)
ENGINES = ("ours", "ctranslate2")


AUTO = "auto"  # --source-lang auto: each row's language identified from its text (pipeline/languages/)
DETECTED_COLUMN = "detected_lang"  # pipeline/columns.py DETECTED (settings sit below columns in the layers)


@dataclass(frozen=True)
class LanguageChoice:
    """Where each row's language pair comes from: its own columns where set, else (source `auto`) the language
    identified from its text, else the run's flags. `source` is a code, `auto` (no fallback: a row not
    identified has no language) or `auto:xx` (xx where a row is not identified)."""

    source: str = "en"
    target: str = ""
    source_column: str = ""
    target_column: str = ""

    @property
    def detect(self) -> bool:
        return self.source == AUTO or self.source.startswith(AUTO + ":")

    @property
    def fallback(self) -> str:
        """The source language of a row with none given or identified ("" none)."""
        if self.detect:
            return self.source[len(AUTO) + 1:]
        return self.source

    @property
    def columns(self) -> list[str]:
        return [c for c in (self.source_column, self.target_column) if c]

    def of_rows(self, table) -> tuple[list[str], list[str]]:
        """(source languages, target languages) of a pyarrow table's rows ("" where unknown). With `auto`,
        a row's source is its own column's value, else its `detected_lang` (when the table has it), else
        the fallback."""
        n = table.num_rows

        def column(name: str, default) -> list[str]:
            if not name:
                return list(default) if isinstance(default, list) else [default] * n
            if isinstance(default, list):
                return [v or d for v, d in zip(table.column(name).to_pylist(), default, strict=True)]
            return [v or default for v in table.column(name).to_pylist()]

        source = self.source
        if self.detect:
            detected = (table.column(DETECTED_COLUMN).to_pylist() if DETECTED_COLUMN in table.column_names
                        else [None] * n)
            source = [d or self.fallback for d in detected]
        return column(self.source_column, source), column(self.target_column, self.target)


@dataclass(frozen=True)
class TranslationSettings:
    """Everything that changes the text or the columns written for a row."""

    decode: DecodeConfig = arg(DecodeConfig())
    precision: str = arg("auto", help="auto: bf16 on GPU, fp32 on CPU; int8 (CPU actors only): int8 linear "
                         "layers (their speed-up over fp32 and BLEU: README, Performance and quality)",
                         choices=PRECISIONS)
    engine: str = arg("ours", help="the model actors' decoder: ours, or ctranslate2 (opt-in: single Transformer "
                      "models converted once per actor; needs the ctranslate2 and transformers packages, "
                      "pip install -e '.[ctranslate2]')", choices=ENGINES)
    max_source_tokens: int = arg(256, help="longer sources are split (or truncated) to this many subwords")
    long_policy: str = arg("split", help="what to do with sources over --max-source-tokens",
                           choices=["split", "truncate"])
    write_scores: bool = arg(False, help="add a `score` column (length-normalized log-probability)")
    unit: str = arg("sentence", help="what a row's source is: a sentence (or short text), or a document that is "
                    "cut into sentences, translated and put back together with its layout", choices=UNITS)
    format: str = arg("text", help="--unit document: what a document is: text (its layout kept byte for byte), html "
                      "or markdown (the text translated, the markup kept byte for byte)", choices=FORMATS)
    source_lang: str = arg("en", help="source language code: sentence splitting with --unit document, and the "
                           "source language token of multilingual models (M2M100: en, NLLB: eng_Latn); auto: each "
                           "row's (segment's) language identified from its text (a `detected_lang` column; rows "
                           "not identified get status unknown_language); auto:xx: the same, xx where not identified")
    lang_confidence: float = arg(0.3, help="--source-lang auto: the least probability the language identifier "
                                 "must give a row's language to call it")
    quality_flags: bool = arg(False, help="add a `flags` column (repeated_ngrams, copied_source, "
                              "wrong_target_language, length_ratio; pipeline/languages/flags.py) and count them in "
                              "the report")
    target_lang: str = arg("", help="the target language of every row: multilingual models' (M2M100: de, NLLB: "
                           "deu_Latn, multilingual OPUS-MT: the xx of its >>xx<< tokens); for a bilingual model, "
                           "its output language (rows identified in it are same_language)")
    source_lang_column: str = arg("", help="column with each row's source language (where null: --source-lang)")
    target_lang_column: str = arg("", help="column with each row's target language (where null: --target-lang); "
                                  "rows of all target languages share the same batches")
    write_segments: bool = arg(False, help="--unit document: add `source_segments` and `target_segments` list "
                               "columns (what was translated, for auditing)")

    def __post_init__(self):
        if self.max_source_tokens < 2:
            raise ValueError("--max-source-tokens must be >= 2")
        if self.unit == "document" and (self.decode.nbest > 1 or self.write_scores):
            raise ValueError("--nbest and --write-scores are per sentence: use them with --unit sentence")
        if self.write_segments and self.unit != "document":
            raise ValueError("--write-segments needs --unit document")
        if self.format != "text" and self.unit != "document":
            raise ValueError("--format html|markdown needs --unit document")
        if self.source_lang.startswith(AUTO) and not self.languages.detect:
            raise ValueError(f"--source-lang {self.source_lang!r}: auto, or auto:xx with xx the language of rows "
                             "not identified")
        if not 0.0 <= self.lang_confidence <= 1.0:
            raise ValueError("--lang-confidence is a probability, between 0 and 1")

    @property
    def languages(self) -> LanguageChoice:
        return LanguageChoice(self.source_lang, self.target_lang, self.source_lang_column, self.target_lang_column)

    @property
    def multilingual(self) -> bool:
        """Whether rows name a target language (a multilingual model's language pair per row)."""
        return bool(self.target_lang or self.target_lang_column)

    def fingerprint(self) -> dict:
        """The settings a resumed output must share with the run that started it, as the user gave them.

        `--precision auto` stays "auto": what it resolves to follows the hardware a run finds (bf16 on
        GPU actors, fp32 on CPU ones), and a re-run of the same command after the night's GPU nodes
        scaled away must finish the output, not be refused. What each row was decoded in is recorded
        with its part file and counted in the report (`decoded_with`). An explicit precision is part of
        the fingerprint: a re-run with another one is refused.
        """
        return leaf_values(self)


@dataclass(frozen=True)
class ComputeConfig:
    """Actors, CPUs, GPUs and batch sizes: how the work is spread, never what it produces."""

    actors: int = arg(0, help="fixed number of model actors (0: on GPUs autoscale between --min-actors and "
                      "--max-actors; on CPUs one per --cpus-per-actor of the CPUs the other stages leave, "
                      "unless --max-actors is given)")
    min_actors: int = arg(1, help="autoscaling pool: minimum model actors")
    max_actors: int = arg(0, help="autoscaling pool: maximum model actors (0: one per GPU in the cluster)")
    gpus_per_actor: float = arg(-1.0, help="GPUs per model actor, fractional allowed (-1: 1 if the cluster "
                                "has GPUs, else 0)")
    # One torch thread per CPU actor and one actor per core: on 2 cores two 1-thread actors translate 1.5x
    # faster than one 2-thread actor, whose threads wait on each other whenever another stage runs.
    cpus_per_actor: float = arg(1.0, help="CPUs reserved per model actor (also its torch threads on CPU)")
    torch_threads: int = arg(0, help="torch threads per CPU actor (0: --cpus-per-actor)")
    # A CPU actor of several threads decodes several batches at once, one thread each, through its one copy
    # of the model: a decoding step's products are too small to split well (model/decoding/batched.py).
    cpu_streams: int = arg(0, help="batches a CPU actor decodes at once, each on --torch-threads / streams "
                           "threads, sharing the actor's one copy of the model (0: one per torch thread; 1: one "
                           "batch at a time on every thread)")
    cpu_blas: str = arg("auto", help="library of CPU actors' fp32 products: openblas (the vocabulary projection "
                        "and the encoder's products in numpy's OpenBLAS), onednn (every linear layer in torch's "
                        "oneDNN), torch (MKL on x86), auto (on AMD: onednn, except openblas for 1-thread actors "
                        "on CPUs without AVX-512; elsewhere torch; why, and how to measure it: README, The jobs)",
                        choices=CPU_BLAS)
    batch_rows: int = arg(0, help="rows per model-actor call, sorted by length inside the actor (0: 1,024 for CPU "
                          "actors, 8,192 for GPU actors, whose token budget holds many more rows at once)")
    # The budget sets how many rows a decoding step multiplies, and a step's products run far from the
    # CPU's peak under ~250 rows. At 12,000, inputs of ~45 tokens got ~130 rows: 24,000 decoded them
    # 1.09-1.14x faster at 1 thread (fp32, int8) and 1.20x at 2, captions (~14 tokens) even at 1 thread
    # and 1.15x at 2 (in-process interleaved runs), for ~+95 MB of peak memory on captions per actor.
    max_tokens: int = arg(0, help="decoding token budget per sub-batch: rows x beam x (source + target) (0: 24,000 "
                          "on CPU; on a GPU, sized by each actor from its share of the GPU's memory and the model)")
    cpu_actors: int = arg(1, help="actors for each of the tokenize and detokenize stages")
    cpus_per_stage: float = arg(0.25, help="CPUs per task/actor of the tokenize, detokenize and write stages")

    @property
    def stage_cpus(self) -> float:
        """CPU slots the pipeline needs beside the model actors: the read tasks, the tokenize and detokenize
        actors, write tasks and the shard commits, `cpus_per_stage` each (pipeline/plan.py). Fewer, and a
        stage waits forever."""
        return 5 * self.cpus_per_stage

    @property
    def model_actors(self) -> int:
        """Most model actors this config may start (to size a local Ray instance)."""
        return self.actors or max(self.min_actors, self.max_actors, 1)


# Automatic batch sizes. A CPU actor's budget is its speed optimum (above); a GPU actor's budget is set by
# the actor from its memory (pipeline/runtime/gpu_budget.py), and its calls carry more rows so the budget can fill.
CPU_MAX_TOKENS = 24000
CPU_BATCH_ROWS = 1024
GPU_BATCH_ROWS = 8192


def actors_for_gpus(gpus: float, gpus_per_actor: float) -> int:
    """How many actors of `gpus_per_actor` GPUs fit on `gpus` GPUs. A plain `gpus // gpus_per_actor`
    is one short for fractions that binary floating point cannot hold (1 // 0.1 == 9.0); Ray itself
    counts GPU shares in units of 1/10,000."""
    return int(round(gpus * 10000)) // int(round(gpus_per_actor * 10000))


@dataclass(frozen=True)
class ClusterView:
    """What the job knows of the cluster when it starts (pipeline/cluster.py reads it from Ray).

    node_cpus: the CPUs of each node that is up. gpus: the GPUs that are up. max_gpus / max_node_cpus:
    what the cluster can grow to, from its autoscaler's node types where they can be read (GPU nodes
    that scale from zero are not up when a nightly job starts), else what is up.
    """

    node_cpus: tuple[float, ...] = (1.0,)
    gpus: float = 0.0
    max_gpus: float = 0.0
    max_node_cpus: tuple[float, ...] = ()
    source: str = ""  # where max_* were read ("" : nowhere, they are what is up)

    @classmethod
    def of(cls, gpus: float = 0.0, cpus: float = 1.0) -> ClusterView:
        """One node of `cpus` CPUs with `gpus` GPUs, nothing to scale to (a laptop, a test)."""
        return cls(node_cpus=(cpus,), gpus=gpus, max_gpus=gpus)

    @property
    def can_provide_gpus(self) -> float:
        return max(self.gpus, self.max_gpus)


def cpu_actors_that_fit(node_cpus: tuple[float, ...], cpus_per_actor: float, stage_cpus: float) -> int:
    """How many model actors of `cpus_per_actor` CPUs the nodes hold while `stage_cpus` stay free for the
    other stages. Counted per node: an actor cannot span nodes, and 2 CPUs free on two nodes do not
    hold an actor of 2. The stages take fractions of a CPU, so they fit in any node's leftover."""
    per_node = sum(int((c + 1e-9) // cpus_per_actor) for c in node_cpus)
    overall = int((sum(node_cpus) - stage_cpus + 1e-9) // cpus_per_actor)
    return max(0, min(per_node, overall))


def resolve_hardware(settings: TranslationSettings, compute: ComputeConfig, cluster: ClusterView
                     ) -> tuple[TranslationSettings, ComputeConfig]:
    """The automatic values filled for `cluster`; ValueError for impossible ones.

    GPU actors when the user asks for them or the cluster can provide GPUs (up now, or node types its
    autoscaler can start: the actors' GPU demand is what makes it start them), else CPU actors. The
    precision follows that choice, not what is up at the moment, so the same command resolves alike
    every night on the same cluster.
    """
    gpus_per_actor = (compute.gpus_per_actor if compute.gpus_per_actor >= 0
                      else (1.0 if cluster.can_provide_gpus else 0.0))
    actors, min_actors = compute.actors, compute.min_actors
    if gpus_per_actor:
        max_actors = compute.max_actors or max(1, actors_for_gpus(cluster.can_provide_gpus, gpus_per_actor))
    else:
        # CPU actors: as many as the nodes hold beside the other stages; up to what the cluster can grow to
        # (the pool takes nodes that join mid-run), or --max-actors.
        fit = max(1, cpu_actors_that_fit(cluster.node_cpus, compute.cpus_per_actor, compute.stage_cpus))
        grown = cpu_actors_that_fit(cluster.max_node_cpus or cluster.node_cpus, compute.cpus_per_actor,
                                    compute.stage_cpus)
        max_actors = compute.max_actors or max(fit, grown)
        if not actors:
            min_actors = max(compute.min_actors, min(fit, max_actors))
            if min_actors == max_actors:  # nothing to grow to: a fixed pool
                actors = max_actors
    if actors:  # a fixed pool: its minimum and maximum are its size (the report shows all three)
        min_actors = max_actors = actors
    precision = settings.precision if settings.precision != "auto" else ("bf16" if gpus_per_actor else "fp32")
    check_precision(precision, on_gpu=bool(gpus_per_actor))
    threads = compute.torch_threads or max(1, int(compute.cpus_per_actor))
    return (replace(settings, precision=precision),
            replace(compute, actors=actors, gpus_per_actor=gpus_per_actor, min_actors=min_actors,
                    max_actors=max(max_actors, min_actors), torch_threads=threads,
                    batch_rows=compute.batch_rows or (GPU_BATCH_ROWS if gpus_per_actor else CPU_BATCH_ROWS),
                    # GPU actors keep 0: each sizes its own budget from the memory it finds.
                    max_tokens=compute.max_tokens or (0 if gpus_per_actor else CPU_MAX_TOKENS)))


def fit_to_input(compute: ComputeConfig, rows: int) -> ComputeConfig:
    """`compute` (resolved) with its model-actor calls and pool sized to the `rows` this run translates, known
    once the run is planned: calls of at most rows / actors rows, so that every model actor the pool starts
    gets one, and no more actors than calls. Without it the 300-row sample went in one 1,024-row call to one
    of two actors; the other loaded the model for nothing (and Ray warned that the pool's minimum exceeded its
    inputs). Sentence rows only: a document's segment count is not known before it is cut."""
    if rows <= 0:
        return compute
    pool = max(1, compute.actors or compute.min_actors)
    batch_rows = max(1, min(compute.batch_rows, -(-rows // pool)))
    calls = -(-rows // batch_rows)
    if compute.actors:
        n = min(compute.actors, calls)
        return replace(compute, batch_rows=batch_rows, actors=n, min_actors=n, max_actors=n)
    low = min(compute.min_actors, calls)
    return replace(compute, batch_rows=batch_rows, min_actors=low, max_actors=max(low, min(compute.max_actors, calls)))
