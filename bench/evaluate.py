"""Evaluate a checkpoint on a Parquet test set with the translation job; print and return its report.

    python bench/evaluate.py --model models/multi30k-en-de --data work/multi30k/test_2016_flickr

The job runs in its own process (a fresh local Ray), with beam search as users run it.
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
    args = p.parse_args()
    result = evaluate(args.model, args.data, args.beam_size)
    print(json.dumps(result["overall"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
