"""What a worker node lost mid-run costs: the translation job on a cluster of a CPU-less head and two
2-CPU workers (ray.cluster_utils.Cluster on this machine), once uninterrupted and once losing a worker
node outright (as a spot preemption) when a third of the shards are committed.

    python bench/preemption.py --out bench/results/preemption_cpu.json

Writes the wall time of both runs, when the node was lost, the time lost, and whether the interrupted
run wrote every id once with the uninterrupted run's translations. docs/operations.md shows it
(`python bench/make_docs.py`).
"""

from __future__ import annotations

import argparse
import glob
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


def corpus(folder: str, data: str, sentences: int, shards: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def lines(name):
        with gzip.open(os.path.join(data, name), "rt", encoding="utf-8") as f:
            return f.read().splitlines()

    src, ref = lines("val.en.gz"), lines("val.de.gz")
    for s in range(shards):
        ids = range(s * sentences // shards, (s + 1) * sentences // shards)
        pq.write_table(pa.table({"id": [f"s{i}" for i in ids], "source": [src[i % len(src)] for i in ids],
                                 "reference": [ref[i % len(ref)] for i in ids]}),
                       os.path.join(folder, f"part-{s:03d}.parquet"))


def run(args, input_dir: str, output: str, lose_node: bool) -> dict:
    from ray.cluster_utils import Cluster

    os.environ["RAY_AUTH_MODE"] = "disabled"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=2) for _ in range(2)]
    cluster.wait_for_nodes()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_")}, "RAY_ADDRESS": cluster.address,
           "RAY_AUTH_MODE": "disabled", "PYTHONPATH": ROOT}
    cmd = [sys.executable, os.path.join(ROOT, "jobs", "translate_corpus.py"), "--input", input_dir, "--output", output,
           "--model", args.model, "--beam-size", str(args.beam_size), "--batch-rows", str(args.batch_rows),
           "--metrics", "bleu"]
    result = {"lost_node": lose_node}
    try:
        t0 = time.time()
        with open(output + ".log", "w") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            while lose_node and proc.poll() is None:
                done = len(glob.glob(f"{output}/translations/*.parquet"))
                if done >= args.shards // 3:
                    cluster.remove_node(workers[1], allow_graceful=False)
                    result.update(lost_at_seconds=round(time.time() - t0, 1), shards_committed_at_loss=done)
                    break
                time.sleep(0.2)
            result["exit"] = proc.wait(timeout=1800)
        result["seconds"] = round(time.time() - t0, 1)
    finally:
        cluster.shutdown()
    with open(f"{output}/report.json") as f:
        report = json.load(f)
    result.update(sentences=report["overall"]["sentences"], bleu=round(report["overall"]["scores"]["bleu"]["score"], 2),
                  actors=len(report["run"]["actor_rows"]))
    return result


def translations(output: str) -> dict:
    from pipeline.io import read_table

    table = read_table(f"{output}/translations")
    ids = table.column("id").to_pylist()
    return {"unique_ids": len(set(ids)), "rows": len(ids),
            "by_id": dict(zip(ids, table.column("translation").to_pylist(), strict=True))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DATA)
    p.add_argument("--model", default=os.path.join(ROOT, "models", "multi30k-en-de"))
    p.add_argument("--sentences", type=int, default=1200)
    p.add_argument("--shards", type=int, default=12)
    p.add_argument("--batch-rows", type=int, default=25)
    p.add_argument("--beam-size", type=int, default=2)
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "preemption_cpu.json"))
    args = p.parse_args()
    from bench.machine import cpu_info

    work = tempfile.mkdtemp(prefix="preemption-")
    try:
        input_dir = os.path.join(work, "corpus")
        os.makedirs(input_dir)
        corpus(input_dir, args.data, args.sentences, args.shards)
        whole = run(args, input_dir, os.path.join(work, "whole"), lose_node=False)
        lost = run(args, input_dir, os.path.join(work, "lost"), lose_node=True)
        a, b = translations(os.path.join(work, "whole")), translations(os.path.join(work, "lost"))
        lost.update(unique_ids=b["unique_ids"], rows=b["rows"],
                    identical_translations=sum(b["by_id"].get(k) == v for k, v in a["by_id"].items()))
        result = {"machine": cpu_info(), "config": {k: v for k, v in vars(args).items() if k not in ("out", "data")},
                  "cluster": "a head of 0 CPUs and two workers of 2 CPUs (ray.cluster_utils.Cluster, one machine)",
                  "runs": [whole, lost], "seconds_lost": round(lost["seconds"] - whole["seconds"], 1)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
