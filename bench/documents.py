"""Document mode against sentence mode on the same sentences.

    python bench/documents.py --out bench/results/documents_cpu.json

Builds a corpus of many short documents (1-3 paragraphs of Multi30k sentences, some lines as
bullets) plus a few 100,000-character documents, translates it with `--unit document`, then
translates exactly the segments document mode sent to the model, one per row, in sentence mode.
Reports documents per second, segments per actor-second, the actors' peak memory and how the rows
spread over the model actors. Writes one JSON file.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "multi30k")


def sentences(data: str) -> list[str]:
    with gzip.open(os.path.join(data, "train.en.gz"), "rt", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def paragraph(rng: random.Random, pool: list[str], n: int) -> str:
    return " ".join(rng.choice(pool) for _ in range(n))


def build_documents(pool: list[str], short: int, long: int, long_chars: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for _ in range(short):
        paras = [paragraph(rng, pool, rng.randint(1, 4)) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.3:
            paras.append("\n".join(f"- {rng.choice(pool)}" for _ in range(rng.randint(2, 4))))
        docs.append("\n\n".join(paras) + "\n")
    for _ in range(long):
        text = []
        while sum(map(len, text)) < long_chars:
            text.append(paragraph(rng, pool, rng.randint(2, 6)))
        docs.append("\n\n".join(text))
    rng.shuffle(docs)
    return docs


def run(corpus: str, out: str, args, *extra: str) -> dict:
    cmd = [sys.executable, os.path.join(ROOT, "jobs", "translate_corpus.py"), "--input", corpus, "--output", out,
           "--actors", str(args.actors), "--cpus-per-actor", str(args.cpus_per_actor), "--beam-size",
           str(args.beam_size), "--metrics", "", *extra]
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "RAY_ADDRESS": "local"})
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    r = report["run"]
    return {"rows": report["overall"]["sentences"], "segments": r["sentences"], "seconds": r["seconds"],
            "wall_seconds": round(time.time() - t0, 1),
            "rows_per_second": round(report["overall"]["sentences"] / r["seconds"], 2),
            "segments_per_actor_second": r["sentences_per_actor_second"],
            "target_tokens_per_actor_second": r["target_tokens_per_actor_second"],
            "actor_peak_rss_mb": r["actor_peak_rss_mb"], "actor_rows": r.get("actor_rows", []),
            "status": report["overall"].get("status", {})}


def main() -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bench.machine import cpu_info
    from pipeline.documents import split_document

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DATA)
    p.add_argument("--short", type=int, default=400, help="short documents")
    p.add_argument("--long", type=int, default=2, help="documents of --long-chars characters")
    p.add_argument("--long-chars", type=int, default=100_000)
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--cpus-per-actor", type=float, default=1)
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "documents_cpu.json"))
    args = p.parse_args()
    docs = build_documents(sentences(args.data), args.short, args.long, args.long_chars, seed=1)
    segments = [s for d in docs for s in split_document(d).segments]
    results = {"machine": cpu_info(), "config": {k: v for k, v in vars(args).items() if k != "data"},
               "documents": len(docs), "characters": sum(map(len, docs)), "segments": len(segments),
               "longest_document_characters": max(map(len, docs))}
    with tempfile.TemporaryDirectory() as tmp:
        for name, rows in (("documents", docs), ("sentences", segments)):
            os.makedirs(os.path.join(tmp, name))
            pq.write_table(pa.table({"id": list(range(len(rows))), "source": rows}),
                           os.path.join(tmp, name, "part-0.parquet"))
        results["document_mode"] = run(os.path.join(tmp, "documents"), os.path.join(tmp, "o1"), args,
                                       "--unit", "document")
        results["sentence_mode"] = run(os.path.join(tmp, "sentences"), os.path.join(tmp, "o2"), args)
    d, s = results["document_mode"], results["sentence_mode"]
    results["document_vs_sentence_segments_per_actor_second"] = round(
        d["segments_per_actor_second"] / s["segments_per_actor_second"], 2)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
