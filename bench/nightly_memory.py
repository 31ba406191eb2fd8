"""What the translation memory and in-run deduplication save on a nightly store (issue "Nightly runs that cost
what changed"), with the shipped model on this machine's CPUs.

    python bench/nightly_memory.py --out bench/results/memory_nightly_cpu.json

A store of --rows Multi30k training sentences in --shards shards:
- night 1 into an empty memory; night 2 (5% of rows edited, 2% added, 1% removed) into a new output with the
  same memory; a cold run of night 2's input without memory. Night 2's time against the cold run's, its hits,
  and whether its output equals the cold run's (goal: <= 0.2x the time, identical);
- the store with every row three times (the copies in other shards) against the unique rows alone, both
  without memory (goal: <= 1.2x).
Times are wall clock of `python jobs/translate_corpus.py` (Ray's start-up included) and the report's
`run.seconds` (from Ray up to the report). docs/results.md shows them (`python bench/make_docs.py`).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "multi30k")


def train_sentences(data: str) -> list[str]:
    with gzip.open(os.path.join(data, "train.en.gz"), "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def write_store(folder: str, rows: list[tuple[str, str]], shards: int) -> None:
    """rows: (id, source) in order, cut into `shards` shards of consecutive rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(folder)
    size = -(-len(rows) // shards)
    for s in range(shards):
        part = rows[s * size:(s + 1) * size]
        pq.write_table(pa.table({"id": [r[0] for r in part], "source": [r[1] for r in part]}),
                       os.path.join(folder, f"shard-{s:03d}.parquet"))


def night2_rows(night1: list[tuple[str, str]], spare: list[str], edit=0.05, add=0.02, drop=0.01):
    """Night 1's rows with every 1/edit-th row's text replaced by an unseen sentence, every 1/drop-th row
    (offset so as not to meet the edits) removed, and add * rows new rows spread over the store."""
    fresh = iter(spare)
    out = []
    every_edit, every_drop, every_add = round(1 / edit), round(1 / drop), round(1 / add)
    for i, (rid, text) in enumerate(night1):
        if i % every_drop == every_drop // 2:
            continue
        out.append((rid, next(fresh) if i % every_edit == 0 else text))
        if i % every_add == every_add // 3:
            out.append((f"new-{i}", next(fresh)))
    return out


def translate(input_dir: str, output: str, log: str, *extra: str) -> dict:
    cmd = [sys.executable, os.path.join(ROOT, "jobs", "translate_corpus.py"), "--input", input_dir,
           "--output", output, *extra]
    t0 = time.time()
    with open(log, "w") as fh:
        code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode
    wall = time.time() - t0
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {code}: see {log}")
    with open(os.path.join(output, "report.json")) as fh:
        run = json.load(fh)["run"]
    return {"wall_seconds": round(wall, 1), "run_seconds": run["seconds"], "rows": run["sentences"],
            "target_tokens": run["target_tokens"], "duplicate_segments": run["duplicate_segments"],
            **({"memory": run["memory"]} if "memory" in run else {})}


def translations(output: str) -> dict:
    from pipeline.io import read_table

    table = read_table(os.path.join(output, "translations"))
    return dict(zip(table.column("id").to_pylist(),
                    zip(table.column("translation").to_pylist(), table.column("status").to_pylist(), strict=True),
                    strict=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--shards", type=int, default=10)
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "memory_nightly_cpu.json"))
    ap.add_argument("--keep", default="", help="keep the stores and outputs in this folder")
    args = ap.parse_args()
    from bench.machine import cpu_info

    sentences = train_sentences(args.data)
    night1 = [(f"r{i}", sentences[i]) for i in range(args.rows)]
    night2 = night2_rows(night1, sentences[args.rows:])
    work = args.keep or tempfile.mkdtemp(prefix="nightly-")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    write_store(f"{work}/night1", night1, args.shards)
    write_store(f"{work}/night2", night2, args.shards)
    # Each row three times, the copies two and four shards on (other shards: other batches and actors).
    tripled = [(f"{rid}-{c}", text) for c in range(3) for rid, text in night1]
    write_store(f"{work}/tripled", tripled, 3 * args.shards)
    memory = f"{work}/memory"
    runs = {}
    for name, store, extra in (("night1", "night1", ["--memory", memory]), ("night2", "night2", ["--memory", memory]),
                               ("cold", "night2", []), ("unique", "night1", []), ("tripled", "tripled", [])):
        runs[name] = translate(f"{work}/{store}", f"{work}/out-{name}", f"{work}/{name}.log", *extra)
        print(name, runs[name], flush=True)
    same = translations(f"{work}/out-night2") == translations(f"{work}/out-cold")
    result = {
        "machine": cpu_info(),
        "config": {"rows": args.rows, "shards": args.shards, "model": "models/multi30k-en-de (shipped), job defaults",
                   "night2": {"rows": len(night2), "edited": 0.05, "added": 0.02, "removed": 0.01},
                   "tripled_rows": len(tripled)},
        "runs": runs,
        "night2_over_cold": {"wall": round(runs["night2"]["wall_seconds"] / runs["cold"]["wall_seconds"], 3),
                             "run": round(runs["night2"]["run_seconds"] / runs["cold"]["run_seconds"], 3)},
        "night2_identical_to_cold": same,
        "tripled_over_unique": {"wall": round(runs["tripled"]["wall_seconds"] / runs["unique"]["wall_seconds"], 3),
                                "run": round(runs["tripled"]["run_seconds"] / runs["unique"]["run_seconds"], 3)},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2)
    print(json.dumps({k: result[k] for k in ("night2_over_cold", "night2_identical_to_cold", "tripled_over_unique")}))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
