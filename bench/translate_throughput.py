"""Translation throughput and memory of the whole job.

    python bench/translate_throughput.py --sentences 3000 --scale 10 --out bench/results/translate_cpu.json

Builds a corpus of the requested size from the shipped sample (shuffled, with lengths varied by
joining 1-4 sample sentences, as real documents mix short and long segments), runs the
translation job on it (and, on CPU, with int8 linear layers), then on a corpus --scale times larger
to check that driver and actor memory stay flat. Writes one JSON file. The comparison of batching
schemes (fixed input-order batches vs length-sorted token budgets) and of engines on the same
weights is bench/engines.py.
"""

from __future__ import annotations

import argparse
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

from pipeline.io import read_table  # noqa: E402


def make_corpus(path: str, sentences: int, shards: int, seed: int) -> None:
    sample = read_table(os.path.join(ROOT, "samples", "multi30k-en-de"))
    src, ref = sample.column("source").to_pylist(), sample.column("reference").to_pylist()
    rng = random.Random(seed)
    rows = []
    for i in range(sentences):
        k = rng.choices([1, 2, 3, 4], weights=[6, 2, 1, 1])[0]
        picks = [rng.randrange(len(src)) for _ in range(k)]
        rows.append((f"s{i}", " ".join(src[j] for j in picks), " ".join(ref[j] for j in picks)))
    os.makedirs(path, exist_ok=True)
    per = -(-sentences // shards)
    for s in range(shards):
        chunk = rows[s * per:(s + 1) * per]
        pq.write_table(pa.table({"id": [r[0] for r in chunk], "source": [r[1] for r in chunk],
                                 "reference": [r[2] for r in chunk]}), os.path.join(path, f"part-{s:03d}.parquet"))


def run_job(corpus: str, out: str, args, *extra: str) -> dict:
    """One run of the job in its own process, so its memory figures are its own."""
    argv = [sys.executable, os.path.join(ROOT, "jobs", "translate_corpus.py"), "--input", corpus, "--output", out,
            "--model", args.model, "--beam-size", str(args.beam_size),
            "--batch-rows", str(args.batch_rows), "--actors", str(args.actors),
            "--cpus-per-actor", str(args.cpus_per_actor), "--metrics", "bleu", *extra]
    t0 = time.time()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "RAY_ADDRESS": "local"})
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    run = report["run"]
    return {"sentences": run["sentences"], "seconds": run["seconds"], "wall_seconds": round(time.time() - t0, 1),
            "sentences_per_second": run["sentences_per_second"],
            "target_tokens_per_second": run["target_tokens_per_second"],
            "actor_decode_seconds": run["actor_decode_seconds"],
            "sentences_per_actor_second": run["sentences_per_actor_second"],
            "target_tokens_per_actor_second": run["target_tokens_per_actor_second"],
            "padding_efficiency": run["padding_efficiency"], "driver_peak_rss_mb": run["driver_peak_rss_mb"],
            "actor_peak_rss_mb": round(run["actor_peak_rss_mb"], 1),
            "bleu": report["overall"]["scores"]["bleu"]["score"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sentences", type=int, default=3000)
    p.add_argument("--scale", type=int, default=10, help="memory check on a corpus this many times larger")
    p.add_argument("--shards", type=int, default=6)
    p.add_argument("--model", default=os.path.join(ROOT, "models", "multi30k-en-de"))
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--batch-rows", type=int, default=1024, help="rows per actor call (the job's default)")
    p.add_argument("--actors", type=int, default=1)
    p.add_argument("--cpus-per-actor", type=float, default=2)
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "translate_cpu.json"))
    args = p.parse_args()
    import ray
    import torch

    from bench.machine import cpu_info

    results = {"machine": {**cpu_info(), "processor": platform.processor() or platform.machine(),
                           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                           "torch": torch.__version__, "ray": ray.__version__},
               "config": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        small, large = os.path.join(tmp, "small"), os.path.join(tmp, "large")
        make_corpus(small, args.sentences, args.shards, seed=1)
        results["token_budget_sorted"] = run_job(small, os.path.join(tmp, "o2"), args)
        if not torch.cuda.is_available():  # int8 decoding is a CPU path
            results["token_budget_sorted_int8"] = run_job(small, os.path.join(tmp, "o4"), args, "--precision", "int8")
        if args.scale > 1:
            make_corpus(large, args.sentences * args.scale, args.shards * 2, seed=2)
            results[f"token_budget_sorted_x{args.scale}"] = run_job(large, os.path.join(tmp, "o3"), args)
    ours = results["token_budget_sorted"]
    # Speed-ups compare decoding (the actors' time in their calls): the run's wall time adds a start-up
    # of ~10-15 s on this machine that is the same in every mode and would blur them on small corpora.
    if "token_budget_sorted_int8" in results:
        results["int8_speedup_target_tokens_per_actor_second"] = round(
            results["token_budget_sorted_int8"]["target_tokens_per_actor_second"]
            / ours["target_tokens_per_actor_second"], 2)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
