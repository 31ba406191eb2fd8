"""Mixed-language stores: the held-out check of `--source-lang auto`, the quality flags on the shipped model's
output, and what identification costs the whole job.

    python bench/mixed_store.py --data /work/shared/data/multi30k --cost-sentences 20000 \
        --out bench/results/mixed_store_cpu.json

1. Held-out check: test_2016_flickr's English, German and French sentences (1,000 each, never used to train
   the shipped model or to choose the identifier's threshold) shuffled into one store of 3 shards, translated
   with `--source-lang auto --target-lang de --quality-flags` and the shipped en->de model. Counted: rows whose
   `detected_lang` is their true language, English rows whose translation equals a plain run's (the English
   rows alone, no flags about languages), German rows same_language with their source copied, French rows
   unsupported_language.
2. Flags: the plain run over test_2016_flickr's English side with `--quality-flags`: rows per flag, with
   examples.
3. Cost: the sample corpus grown to --cost-sentences rows (bench/translate_throughput.py's corpus) translated
   with and without `--source-lang auto` (wall time of each job, in its own process; plain first).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from bench.translate_throughput import make_corpus  # noqa: E402
from pipeline.io import read_table  # noqa: E402

MODEL = os.path.join(ROOT, "models", "multi30k-en-de")


def lines(data: str, split: str, lang: str) -> list[str]:
    with gzip.open(os.path.join(data, f"{split}.{lang}.gz"), "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def run_job(inp: str, out: str, *extra: str) -> float:
    """The job's wall seconds, in its own process."""
    argv = [sys.executable, os.path.join(ROOT, "jobs", "translate_corpus.py"), "--input", inp, "--output", out,
            "--model", MODEL, *extra]
    t0 = time.time()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "RAY_ADDRESS": "local"})
    return round(time.time() - t0, 1)


def held_out(data: str, split: str, work: str, examples: int) -> dict:
    en, de, fr = (lines(data, split, lang) for lang in ("en", "de", "fr"))
    rows = ([(f"en{i}", t, "en") for i, t in enumerate(en)] + [(f"de{i}", t, "de") for i, t in enumerate(de)]
            + [(f"fr{i}", t, "fr") for i, t in enumerate(fr)])
    random.Random(0).shuffle(rows)
    mixed, plain = os.path.join(work, "mixed"), os.path.join(work, "plain")
    os.makedirs(mixed)
    os.makedirs(plain)
    per = -(-len(rows) // 3)
    for s in range(3):
        chunk = rows[s * per:(s + 1) * per]
        pq.write_table(pa.table({"id": [r[0] for r in chunk], "source": [r[1] for r in chunk]}),
                       os.path.join(mixed, f"part-{s}.parquet"))
    pq.write_table(pa.table({"id": [f"en{i}" for i in range(len(en))], "source": en, "reference": de}),
                   os.path.join(plain, "en.parquet"))
    mixed_s = run_job(mixed, os.path.join(work, "mixed-out"), "--source-lang", "auto", "--target-lang", "de",
                      "--quality-flags")
    plain_s = run_job(plain, os.path.join(work, "plain-out"), "--quality-flags")
    out = {r["id"]: r for r in read_table(os.path.join(work, "mixed-out", "translations")).to_pylist()}
    base = {r["id"]: r for r in read_table(os.path.join(work, "plain-out", "translations")).to_pylist()}
    truth = {i: lang for i, _, lang in rows}
    confusion: dict[str, dict[str, int]] = {}
    for i, lang in truth.items():
        got = out[i]["detected_lang"] or "none"
        confusion.setdefault(lang, {}).setdefault(got, 0)
        confusion[lang][got] += 1
    right = sum(out[i]["detected_lang"] == lang for i, lang in truth.items())
    en_ids = [i for i, lang in truth.items() if lang == "en"]
    de_rows = [(i, t) for i, t, lang in rows if lang == "de"]
    fr_ids = [i for i, lang in truth.items() if lang == "fr"]
    report = json.load(open(os.path.join(work, "plain-out", "report.json")))
    flagged: dict[str, list] = {}
    for r in sorted(base.values(), key=lambda r: int(r["id"][2:])):
        for flag in r["flags"]:
            if len(flagged.setdefault(flag, [])) < examples:
                flagged[flag].append({"id": r["id"], "source": r["source"], "translation": r["translation"]})
    return {
        "rows": len(rows),
        "detection_accuracy": round(right / len(rows), 4),
        "detection_confusion": confusion,
        "english_rows_equal_to_plain_run": sum(out[i]["translation"] == base[i]["translation"] for i in en_ids),
        "english_rows": len(en_ids),
        "german_rows_same_language_copied": sum(out[i]["status"] == "same_language" and out[i]["translation"] == t
                                                for i, t in de_rows),
        "german_rows": len(de_rows),
        "french_rows_unsupported": sum(out[i]["status"] == "unsupported_language" for i in fr_ids),
        "french_rows": len(fr_ids),
        "mixed_status": json.load(open(os.path.join(work, "mixed-out", "report.json")))["overall"]["status"],
        "mixed_seconds": mixed_s, "plain_seconds": plain_s,
        "flags_test_2016": report["overall"].get("flags", {}),
        "flags_test_2016_bleu": report["overall"]["scores"]["bleu"]["score"],
        "flag_examples": flagged,
    }


def cost(work: str, sentences: int, order: str = "plain,auto") -> dict:
    """Wall time of the job with and without --source-lang auto (the machine's load average over each run is
    recorded: on a machine shared with other jobs it says whether a difference is the flag's), and the
    identification of every row alone, in this process on one thread (what the flag adds to the CPU work)."""
    from pipeline.languages.stage import detect_languages

    corpus = os.path.join(work, "cost-in")
    make_corpus(corpus, sentences, 6, seed=0)
    table = read_table(corpus)
    t0 = time.perf_counter()
    detect_languages(table, "source", 0.3)
    detect_s = time.perf_counter() - t0
    runs = {}
    flags = {"plain": (), "auto": ("--source-lang", "auto")}
    for name, extra in ((name, flags[name]) for name in order.split(",")):
        seconds = run_job(corpus, os.path.join(work, f"cost-{name}"), "--metrics", "", *extra)
        report = json.load(open(os.path.join(work, f"cost-{name}", "report.json")))
        runs[name] = {"seconds": seconds, "load_average_1min_after": round(os.getloadavg()[0], 2),
                      "actor_decode_seconds": report["run"]["actor_decode_seconds"],
                      "status": report["overall"]["status"]}
    plain, auto = runs["plain"]["seconds"], runs["auto"]["seconds"]
    return {"sentences": sentences, "plain_seconds": plain, "auto_seconds": auto,
            "auto_over_plain": round(auto / plain, 4), "auto_status": runs["auto"]["status"], "runs": runs,
            "detect_seconds_one_thread": round(detect_s, 2),
            "detect_share_of_plain_run": round(detect_s / plain, 4), "cpus": os.cpu_count(), "order": order}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/work/shared/data/multi30k")
    p.add_argument("--split", default="test_2016_flickr")
    p.add_argument("--cost-sentences", type=int, default=20000, help="0: skip the cost runs")
    p.add_argument("--skip-held-out", action="store_true")
    p.add_argument("--cost-order", default="plain,auto", help="which run first (the machine's load drifts)")
    p.add_argument("--cost-key", default="cost", help="where in the JSON the cost runs go (cost_<x> keeps several)")
    p.add_argument("--examples", type=int, default=3)
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "mixed_store_cpu.json"))
    args = p.parse_args(argv)
    result = json.load(open(args.out)) if os.path.exists(args.out) else {}
    command = "python bench/mixed_store.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result.update(machine=f"{platform.machine()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as work:
        if not args.skip_held_out:
            result["held_out"] = {**held_out(args.data, args.split, work, args.examples), "command": command}
            print(json.dumps({k: v for k, v in result["held_out"].items() if k != "flag_examples"}), flush=True)
        if args.cost_sentences:
            result[args.cost_key] = {**cost(work, args.cost_sentences, args.cost_order), "command": command}
            print(json.dumps(result[args.cost_key]), flush=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
