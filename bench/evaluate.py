"""Evaluate a checkpoint on a Parquet test set with the translation job; print and return its report.

    python bench/evaluate.py --model models/multi30k-en-de --data work/multi30k/test_2016_flickr
    python bench/evaluate.py --model models/multi30k-en-de --data work/multi30k/test_2016_flickr \
        --precision fp32,int8 --out bench/results/precision_cpu.json

The job runs in its own process (a fresh local Ray), with beam search as users run it. With several
--precision values it decodes the set once per value and writes their scores and speed as JSON
(docs/performance.md shows them after `python bench/make_docs.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def evaluate(model: str, data: str, beam_size: int = 5, extra: tuple[str, ...] = ()) -> dict:
    """Translate `data` with `model`; returns {"overall": ..., "run": ..., "decode": ...} of the report."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, os.path.join(ROOT, "jobs", "translate_corpus.py"), "--input", data, "--output",
               tmp, "--model", model, "--beam-size", str(beam_size), *extra]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "RAY_ADDRESS": "local"})
        with open(os.path.join(tmp, "report.json")) as f:
            report = json.load(f)
    return {k: report[k] for k in ("overall", "run", "decode")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--precision", default="", help="comma-separated --precision values of the job to compare")
    p.add_argument("--cpus-per-actor", type=float, default=2)
    p.add_argument("--out", help="write the comparison as JSON here")
    args = p.parse_args()
    if not args.precision:
        result = evaluate(args.model, args.data, args.beam_size)
        print(json.dumps(result["overall"], indent=2))
        return 0
    import platform

    import torch

    out = {"model": os.path.relpath(os.path.abspath(args.model), ROOT), "data": os.path.basename(args.data.rstrip("/")),
           "data_path": os.path.relpath(os.path.abspath(args.data), ROOT),
           "beam_size": args.beam_size, "cpus_per_actor": args.cpus_per_actor,
           "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                       "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
           "runs": {}}
    for precision in args.precision.split(","):
        r = evaluate(args.model, args.data, args.beam_size,
                     ("--precision", precision, "--actors", "1", "--cpus-per-actor", str(args.cpus_per_actor)))
        out["runs"][precision] = {"sentences": r["overall"]["sentences"],
                                  "scores": {m: s["score"] for m, s in r["overall"]["scores"].items()},
                                  "bleu_signature": r["overall"]["scores"]["bleu"]["signature"],
                                  "seconds": r["run"]["seconds"],
                                  "sentences_per_second": r["run"]["sentences_per_second"],
                                  "target_tokens_per_second": r["run"]["target_tokens_per_second"],
                                  "actor_decode_seconds": r["run"]["actor_decode_seconds"],
                                  "sentences_per_actor_second": r["run"]["sentences_per_actor_second"]}
    print(json.dumps(out, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
