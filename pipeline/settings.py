"""The translation pipeline's typed settings, in two groups with different resume rules.

`TranslationSettings` decides what a translation *is*: the search, the
precision it decodes at, how long sources are cut, which columns are written.
A resumed output must keep every one of them, so the resume fingerprint and
the report's `decode` block are generated from this dataclass.

`ComputeConfig` decides where and how fast the work runs: actor counts, CPUs,
GPUs, batch sizes. It may change between a run and its resume.

Both hold "automatic" values (`precision="auto"`, `gpus_per_actor=-1`, ...)
until `resolve_hardware` fills them from the cluster: only resolved settings
are fingerprinted, so a bf16 GPU run is never silently resumed in fp32 on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from model.decode_config import DecodeConfig
from model.flags import arg, leaf_values

CPU_BLAS = ("auto", "torch", "openblas", "onednn")  # pipeline/blas.py, which needs torch, resolves them

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
UNITS = ("sentence", "document")
ENGINES = ("ours", "ctranslate2")


@dataclass(frozen=True)
class LanguageChoice:
    """Where each row's language pair comes from: its own columns where set, else the run's flags."""

    source: str = "en"
    target: str = ""
    source_column: str = ""
    target_column: str = ""

    @property
    def columns(self) -> list[str]:
        return [c for c in (self.source_column, self.target_column) if c]

    def of_rows(self, table) -> tuple[list[str], list[str]]:
        """(source languages, target languages) of a pyarrow table's rows ("" where unknown)."""
        n = table.num_rows

        def column(name: str, default: str) -> list[str]:
            if not name:
                return [default] * n
            return [v or default for v in table.column(name).to_pylist()]

        return column(self.source_column, self.source), column(self.target_column, self.target)


@dataclass(frozen=True)
class TranslationSettings:
    """Everything that changes the text or the columns written for a row."""

    decode: DecodeConfig = arg(DecodeConfig())
    precision: str = arg("auto", help="auto: bf16 on GPU, fp32 on CPU; int8 (CPU actors only): int8 linear "
                         "layers, 1.5-1.7x faster than fp32", choices=PRECISIONS)
    engine: str = arg("ours", help="the model actors' decoder: ours, or ctranslate2 (opt-in: single Transformer "
                      "models converted once per actor; needs the ctranslate2 and transformers packages, "
                      "pip install -e '.[ctranslate2]')", choices=ENGINES)
    max_source_tokens: int = arg(256, help="longer sources are split (or truncated) to this many subwords")
    long_policy: str = arg("split", help="what to do with sources over --max-source-tokens",
                           choices=["split", "truncate"])
    write_scores: bool = arg(False, help="add a `score` column (length-normalized log-probability)")
    unit: str = arg("sentence", help="what a row's source is: a sentence (or short text), or a document that is "
                    "cut into sentences, translated and put back together with its layout", choices=UNITS)
    source_lang: str = arg("en", help="source language code: sentence splitting with --unit document, and the "
                           "source language token of multilingual models (M2M100: en, NLLB: eng_Latn)")
    target_lang: str = arg("", help="multilingual models: the target language of every row (M2M100: de, NLLB: "
                           "deu_Latn, multilingual OPUS-MT: the xx of its >>xx<< tokens)")
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

    @property
    def languages(self) -> LanguageChoice:
        return LanguageChoice(self.source_lang, self.target_lang, self.source_lang_column, self.target_lang_column)

    @property
    def multilingual(self) -> bool:
        """Whether rows name a target language (a multilingual model's language pair per row)."""
        return bool(self.target_lang or self.target_lang_column)

    def fingerprint(self) -> dict:
        """The settings a resumed output must share with the run that started it (resolved values only)."""
        if self.precision == "auto":
            raise ValueError("fingerprint of unresolved settings: resolve the hardware first")
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
    # of the model: a decoding step's products are too small to split well (pipeline/decode.py).
    cpu_streams: int = arg(0, help="batches a CPU actor decodes at once, each on --torch-threads / streams "
                           "threads, sharing the actor's one copy of the model (0: one per torch thread; 1: one "
                           "batch at a time on every thread)")
    cpu_blas: str = arg("auto", help="library of CPU actors' fp32 products: openblas (the vocabulary projection "
                        "and the encoder's products in numpy's OpenBLAS, ~1.5-2x MKL's speed on AMD CPUs at one "
                        "thread), onednn (every linear "
                        "layer in torch's oneDNN; ~1.15x at 2+ threads on AMD), torch (MKL on x86), auto (on AMD: "
                        "onednn, except openblas for 1-thread actors on CPUs without AVX-512; elsewhere torch)",
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
        """CPU slots the pipeline needs beside the model actors: a read task (1 CPU, Ray Data's default), the
        tokenize and detokenize actors, write tasks and the shard commits. Fewer, and a stage waits forever."""
        return 4 * self.cpus_per_stage + 1

    @property
    def model_actors(self) -> int:
        """Most model actors this config may start (to size a local Ray instance)."""
        return self.actors or max(self.min_actors, self.max_actors, 1)


# Automatic batch sizes. A CPU actor's budget is its speed optimum (above); a GPU actor's budget is set by
# the actor from its memory (pipeline/gpu_budget.py), and its calls carry more rows so the budget can fill.
CPU_MAX_TOKENS = 24000
CPU_BATCH_ROWS = 1024
GPU_BATCH_ROWS = 8192


def actors_for_gpus(gpus: float, gpus_per_actor: float) -> int:
    """How many actors of `gpus_per_actor` GPUs fit on `gpus` GPUs. A plain `gpus // gpus_per_actor`
    is one short for fractions that binary floating point cannot hold (1 // 0.1 == 9.0); Ray itself
    counts GPU shares in units of 1/10,000."""
    return int(round(gpus * 10000)) // int(round(gpus_per_actor * 10000))


def resolve_hardware(settings: TranslationSettings, compute: ComputeConfig, gpus: float,
                     cpus: float = 1.0) -> tuple[TranslationSettings, ComputeConfig]:
    """The automatic values filled for a cluster with `gpus` GPUs and `cpus` CPUs; ValueError for impossible ones."""
    gpus_per_actor = compute.gpus_per_actor if compute.gpus_per_actor >= 0 else (1.0 if gpus else 0.0)
    max_actors = compute.max_actors or (max(1, actors_for_gpus(gpus, gpus_per_actor)) if gpus_per_actor else 1)
    actors = compute.actors
    if not actors and not gpus_per_actor and not compute.max_actors:
        # CPU clusters: a fixed pool over the CPUs the other stages leave (Ray Data's autoscaler adds
        # actors only for a deep queue, and a CPU actor is cheap to start).
        actors = max(compute.min_actors, int((cpus - compute.stage_cpus) // compute.cpus_per_actor), 1)
    precision = settings.precision if settings.precision != "auto" else ("bf16" if gpus_per_actor else "fp32")
    if precision == "int8" and gpus_per_actor:
        raise ValueError("--precision int8 is for CPU actors (--gpus-per-actor 0); on GPUs use bf16 or fp16")
    if precision == "fp16" and not gpus_per_actor:
        raise ValueError("--precision fp16 needs GPU actors; use bf16 or fp32 on CPU")
    threads = compute.torch_threads or max(1, int(compute.cpus_per_actor))
    return (replace(settings, precision=precision),
            replace(compute, actors=actors, gpus_per_actor=gpus_per_actor,
                    max_actors=max(max_actors, compute.min_actors), torch_threads=threads,
                    batch_rows=compute.batch_rows or (GPU_BATCH_ROWS if gpus_per_actor else CPU_BATCH_ROWS),
                    # GPU actors keep 0: each sizes its own budget from the memory it finds.
                    max_tokens=compute.max_tokens or (0 if gpus_per_actor else CPU_MAX_TOKENS)))
