"""Scoring throughput and memory on a large generated table, checked against sacreBLEU.

    python bench/score_throughput.py --rows 1000000 --out bench/results/score_cpu.json

Generates a table of repeated and shuffled Multi30k sentences (the shipped sample; reference =
the German side, hypothesis = the German side with random word drops and swaps) in 20 groups,
scores it with jobs/score_corpus.py at 1/10 of the rows and at all of them, and reports rows/s
and the peak memory of the driver and of the scoring actors, which must not grow with the rows.
Then scores the same rows with sacreBLEU in a separate process and records whether they are equal:
its public corpus_score where that fits in memory (at 1M rows chrF would need ~24 GB), else
sacreBLEU's own statistics summed over chunks (the method is recorded with each figure).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from pipeline.io import read_table  # noqa: E402

GROUPS = 20


def damaged(text: str, rng: random.Random) -> str:
    words = [w for w in text.split() if rng.random() > 0.1]
    if len(words) > 2 and rng.random() < 0.3:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def make_table(path: str, rows: int, files: int, seed: int) -> None:
    sample = read_table(os.path.join(ROOT, "samples", "multi30k-en-de"))
    refs, src = sample.column("reference").to_pylist(), sample.column("source").to_pylist()
    rng = random.Random(seed)
    os.makedirs(path, exist_ok=True)
    per = -(-rows // files)
    for f in range(files):
        n = min(per, rows - f * per)
        picks = [rng.randrange(len(refs)) for _ in range(n)]
        pq.write_table(pa.table({
            "id": [f"r{f}-{i}" for i in range(n)],
            "source": [src[j] for j in picks],
            "reference": [refs[j] for j in picks],
            "translation": [damaged(refs[j], rng) for j in picks],
            "group": [f"g{rng.randrange(GROUPS):02d}" for _ in range(n)],
        }), os.path.join(path, f"part-{f:03d}.parquet"), row_group_size=50_000)


def run_job(table: str, out: str, metrics: str, actors: int) -> dict:
    """One run of the job in its own process, so its memory figures are its own."""
    argv = [sys.executable, os.path.join(ROOT, "jobs", "score_corpus.py"), "--input", table, "--output", out,
            "--group-by", "group", "--metrics", metrics, "--charts=false", "--actors", str(actors)]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "RAY_ADDRESS": "local"})
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    run = report["run"]
    return {"rows": run["sentences"], "seconds": run["seconds"], "rows_per_second": run["sentences_per_second"],
            "driver_peak_rss_mb": run["driver_peak_rss_mb"], "actor_peak_rss_mb": run["actor_peak_rss_mb"],
            "actor_peak_private_mb": run["actor_peak_private_mb"],
            **{k: run[k] for k in ("actor_private_mb_first_call", "actor_private_mb_last_call", "actor_calls")},
            "scores": {m: s["score"] for m, s in report["overall"]["scores"].items()}}


# sacreBLEU's corpus_score holds every segment's statistics inputs at once: measured on this table,
# about 5.4 kB per row for BLEU, 24 kB for chrF (so chrF on 1M rows needs ~24 GB, more than this
# machine has) and 3.5 kB for TER. Above these row counts the reference is computed chunk by chunk
# instead (see below).
PUBLIC_MAX_ROWS = {"bleu": 2_000_000, "chrf": 400_000, "ter": 2_000_000}


def sacrebleu_reference(table: str, metric: str, chunk_rows: int) -> dict:
    """sacreBLEU's score of the whole table, in a process of its own (so its memory is measured alone).

    chunk_rows == 0: the public `corpus_score(hyps, [refs])` on all rows. Otherwise sacreBLEU's own
    statistics extraction (`_extract_corpus_statistics`, what corpus_score calls) on chunks of rows,
    summed in order and scored with its `_compute_score_from_stats`: the same arithmetic, bounded memory.
    """
    argv = [sys.executable, os.path.abspath(__file__), "--sacrebleu-table", table, "--metrics", metric,
            "--chunk-rows", str(chunk_rows)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def sacrebleu_main(table: str, metric: str, chunk_rows: int) -> int:
    import resource

    from sacrebleu.metrics import BLEU, CHRF, TER

    from pipeline.scoring import corpus_statistics, score_from_statistics

    t0 = time.time()
    t = read_table(table, ["reference", "translation"])
    hyps, refs = t.column("translation").to_pylist(), t.column("reference").to_pylist()
    m = {"bleu": BLEU, "chrf": CHRF, "ter": TER}[metric]()
    if not chunk_rows:
        score, method = m.corpus_score(hyps, [refs]).score, "corpus_score on all rows"
    else:
        total = None
        for i in range(0, len(hyps), chunk_rows):
            stats = corpus_statistics(m, hyps[i:i + chunk_rows], [refs[i:i + chunk_rows]])
            part = [sum(col) for col in zip(*stats, strict=True)]
            total = part if total is None else [a + b for a, b in zip(total, part, strict=True)]
        score = score_from_statistics(m, total).score
        method = f"sacreBLEU statistics in chunks of {chunk_rows:,} rows, summed"
    print(json.dumps({"score": score, "method": method, "rows": len(hyps), "seconds": round(time.time() - t0, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
    return 0


def references(table: str, rows: int, metrics: str) -> dict:
    return {m: sacrebleu_reference(table, m, 0 if rows <= PUBLIC_MAX_ROWS[m] else 50_000) for m in metrics.split(",")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--files", type=int, default=20)
    p.add_argument("--metrics", default="bleu,chrf,ter")
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "score_cpu.json"))
    p.add_argument("--sacrebleu-table", help=argparse.SUPPRESS)  # internal: one reference score, as JSON
    p.add_argument("--chunk-rows", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.sacrebleu_table:
        return sacrebleu_main(args.sacrebleu_table, args.metrics, args.chunk_rows)
    results = {"config": vars(args), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        small, large = os.path.join(tmp, "small"), os.path.join(tmp, "large")
        make_table(small, args.rows // 10, max(2, args.files // 10), seed=1)
        make_table(large, args.rows, args.files, seed=2)
        results["tenth"] = run_job(small, os.path.join(tmp, "s1"), args.metrics, args.actors)
        results["full"] = run_job(large, os.path.join(tmp, "s2"), args.metrics, args.actors)
        results["sacrebleu_tenth"] = references(small, args.rows // 10, args.metrics)
        results["sacrebleu_full"] = references(large, args.rows, args.metrics)
    results["equal_to_sacrebleu"] = all(results[run]["scores"][m] == results[f"sacrebleu_{run}"][m]["score"]
                                        for run in ("tenth", "full") for m in args.metrics.split(","))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))
    return 0 if results["equal_to_sacrebleu"] else 1


if __name__ == "__main__":
    sys.exit(main())
