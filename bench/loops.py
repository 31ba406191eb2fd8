"""Loops and the length limit: how many translations of a model are cut at the maximum length (row status
`length_limit`), and what --no-repeat-ngram-size does to them and to BLEU, on Multi30k val and
test_2016_flickr. No Ray: the translation job's own stages (pipeline/stages/) run in this process.

    python bench/loops.py --ngram-sizes 0,3,4 --beam-size 5 --out bench/results/loops_cpu.json
    python bench/make_docs.py        # docs/performance.md and the README's figures

Every other setting is the job's default (fp32, max length 1.5 x source + 10 tokens, average length
penalty). val decides which setting is better; test is decoded once per setting and only reported.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SHIPPED = os.path.join(ROOT, "models", "multi30k-en-de")
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "multi30k")
SETS = ("val", "test_2016_flickr")
EXAMPLES = 5  # cut translations kept per set and setting, to show what the loops look like


def read_lines(path: str) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def decode_set(stages, sources: list[str], batch_rows: int) -> tuple[list[str], list[str], float]:
    """(translations, statuses, decoding seconds) of `sources`, in calls of `batch_rows` rows as the job's
    model actors get them."""
    import pyarrow as pa

    tokenize, translator, detokenize = stages
    texts, statuses, seconds = [], [], 0.0
    for start in range(0, len(sources), batch_rows):
        rows = sources[start:start + batch_rows]
        tokenized = tokenize(pa.table({"id": list(range(start, start + len(rows))), "source": rows}))
        t0 = time.perf_counter()
        translated = translator(tokenized)
        seconds += time.perf_counter() - t0
        out = detokenize(translated)
        texts += out.column("translation").to_pylist()
        statuses += out.column("status").to_pylist()
    return texts, statuses, seconds


def run_setting(model: str, n: int, args, data: dict) -> dict:
    import sacrebleu

    from model.decoding import DecodeConfig
    from pipeline.stages import Detokenize, Tokenize, Translator

    decode = DecodeConfig(beam_size=args.beam_size, no_repeat_ngram_size=n)
    stages = (Tokenize(model, "source", 256, "split", {}),
              Translator(model, decode, "fp32", args.max_tokens, args.threads, {}),
              Detokenize(model, 1, False, {}))
    out = {}
    for name, (sources, refs) in data.items():
        texts, statuses, seconds = decode_set(stages, sources, args.batch_rows)
        bleu = sacrebleu.metrics.BLEU()
        cut = [i for i, s in enumerate(statuses) if s == "length_limit"]
        out[name] = {"sentences": len(sources), "length_limit": len(cut), "length_limit_rows": cut,
                     "status": {s: statuses.count(s) for s in sorted(set(statuses))},
                     "bleu": bleu.corpus_score(texts, [refs]).score, "bleu_signature": str(bleu.get_signature()),
                     "chrf": sacrebleu.corpus_chrf(texts, [refs]).score,
                     "decode_seconds": round(seconds, 2), "sentences_per_second": round(len(sources) / seconds, 1),
                     "examples": [{"row": i, "source": sources[i], "translation": texts[i]} for i in cut[:EXAMPLES]],
                     "translations": texts}
        print(f"n={n} {name}: length_limit {len(cut)} of {len(sources)}, BLEU {out[name]['bleu']:.2f}, "
              f"{seconds:.0f} s", flush=True)
    return out


def compare(runs: dict[str, dict]) -> None:
    """Beside each guarded setting: the rows it changed against the unguarded run, and what became of the
    unguarded run's cut rows. The translations themselves are dropped (they stay out of the JSON)."""
    base = runs.get("0")
    for key, run in runs.items():
        for name, r in run.items():
            if base is not None and key != "0":
                before = set(base[name]["length_limit_rows"])
                r["changed_rows"] = sum(a != b for a, b in zip(r["translations"], base[name]["translations"],
                                                                strict=True))
                r["cut_before_not_now"] = len(before - set(r["length_limit_rows"]))
                r["cut_now_not_before"] = len(set(r["length_limit_rows"]) - before)
    for run in runs.values():
        for r in run.values():
            r.pop("translations")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=SHIPPED)
    p.add_argument("--data", default=DATA, help="folder with Multi30k's {val,test_2016_flickr}.{en,de}.gz")
    p.add_argument("--sets", default=",".join(SETS))
    p.add_argument("--ngram-sizes", default="0,3,4", help="--no-repeat-ngram-size values (0: off)")
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="the model actor's torch threads (2: two batches at once)")
    p.add_argument("--batch-rows", type=int, default=1024, help="rows per model-actor call, as the job's default")
    p.add_argument("--max-tokens", type=int, default=24000)
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "loops_cpu.json"))
    args = p.parse_args()
    import torch

    from bench.machine import cpu_info

    data = {name: (read_lines(f"{args.data}/{name}.en.gz"), read_lines(f"{args.data}/{name}.de.gz"))
            for name in args.sets.split(",")}
    threads = torch.get_num_threads()
    runs = {}
    try:
        for n in (int(x) for x in args.ngram_sizes.split(",")):
            runs[str(n)] = run_setting(args.model, n, args, data)
    finally:
        torch.set_num_threads(threads)
    compare(runs)
    model = os.path.relpath(os.path.abspath(args.model), ROOT)
    result = {"machine": {**cpu_info(), "processor": platform.processor() or platform.machine(), "gpu": None,
                          "torch": torch.__version__},
              "config": {"model": model, "sets": args.sets, "ngram_sizes": args.ngram_sizes,
                         "beam_size": args.beam_size, "threads": args.threads, "batch_rows": args.batch_rows,
                         "max_tokens": args.max_tokens},
              "runs": runs}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
    print(f"wrote {os.path.relpath(os.path.abspath(args.out), ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
