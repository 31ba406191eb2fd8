"""Evaluate the seed architectures and the shipped Transformer on test_2016_flickr -> JSON.

    python bench/architectures.py --work work/multi30k

Reads the runs written by bench/train_architectures.sh (their best/ checkpoints) and the shipped
model, decodes test_2016_flickr with beam 5 through the translation job, and writes
bench/results/architectures.json: BLEU with signature, parameters, training time and hardware.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.evaluate import evaluate  # noqa: E402
from model.formats import load_checkpoint  # noqa: E402

ROWS = [
    ("lstm-reversed-noattn", "LSTM encoder-decoder, source reversed, no attention (Sutskever et al., 2014)"),
    ("lstm-noattn", "LSTM encoder-decoder, source in order, no attention (Sutskever et al.'s control)"),
    ("gru-bahdanau", "GRU, bidirectional encoder, additive attention (Bahdanau et al., 2014)"),
    ("lstm-luong", "LSTM, bidirectional encoder, multiplicative attention (Luong et al., 2015)"),
    ("lstm-luong-feed", "the same with input feeding (Luong et al., 2015)"),
    ("lstm-luong-ss", "the same without input feeding, trained with scheduled sampling, inverse sigmoid "
     "k = 100 (Bengio et al., 2015)"),
    ("transformer", "Transformer (Vaswani et al., 2017): the shipped model"),
]


def val_bleu_by_epoch(run: str) -> dict[str, float]:
    """Greedy validation BLEU after each epoch, from the run's training log (to compare at equal epochs)."""
    path = os.path.join(run, "training_log.jsonl")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        entries = [json.loads(line) for line in f if line.strip()]
    return {str(e["epoch"]): round(e["val_bleu"], 2) for e in entries if e.get("val_bleu") is not None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=os.path.join(ROOT, "work", "multi30k"))
    p.add_argument("--hardware", default="2 vCPU (AMD EPYC) VM, no GPU; 1 Ray Train worker, 2 torch threads, "
                   "bf16 autocast")
    p.add_argument("--transformer-run", default=os.path.join(ROOT, "work", "multi30k", "model"),
                   help="the shipped model's training run (for its validation curve)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "architectures.json"))
    p.add_argument("--rows", default="", help="comma-separated rows to measure (default: every row with a "
                   "checkpoint); the others keep their last measurement")
    args = p.parse_args()
    only = set(filter(None, args.rows.split(",")))
    test = os.path.join(args.work, "test_2016_flickr")
    # Rows whose checkpoints are not on this machine keep their last measurement (the hardware column
    # says where each was taken); rows found here are measured again.
    previous = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            previous = {row["name"]: row for row in json.load(f)["rows"]}
    rows = []
    for name, title in ROWS:
        path = (os.path.join(ROOT, "models", "multi30k-en-de") if name == "transformer"
                else os.path.join(args.work, "arch", name, "best"))
        if (only and name not in only) or not os.path.exists(os.path.join(path, "config.json")):
            if name in previous:
                rows.append(dict(previous[name], title=title))
                print(f"{name}: keeping the earlier measurement")
            else:
                print(f"skipping {name}: no checkpoint at {path}")
            continue
        ckpt = load_checkpoint(path)
        training = ckpt.metadata.get("training", {})
        result = evaluate(path, test)
        if len(ckpt.metadata.get("stages", [])) > 1:  # the card's stages: training time and updates are their sum
            title += f" (the {len(ckpt.metadata['stages'])} training stages of its card)"
        rows.append({
            "name": name, "title": title, "arch": ckpt.config["arch"], "config": ckpt.config["model"],
            "parameters": sum(p.numel() for p in ckpt.model.parameters()),
            "test_bleu": result["overall"]["scores"]["bleu"]["score"],
            "test_chrf": result["overall"]["scores"]["chrf"]["score"],
            "bleu_signature": result["overall"]["scores"]["bleu"]["signature"],
            "training_hours": round(training.get("seconds", 0.0) / 3600, 2),
            "updates": training.get("step"),
            "epochs": training.get("epoch", training.get("epochs")),  # the shipped card says "epochs"
            "hardware": ckpt.metadata.get("training", {}).get("hardware", args.hardware),
            "val_bleu_greedy": ckpt.metadata.get("validation", {}).get("val_bleu"),
            "val_bleu_by_epoch": val_bleu_by_epoch(args.transformer_run if name == "transformer"
                                                   else os.path.dirname(path)),
        })
        print(f"{name}: test BLEU {rows[-1]['test_bleu']:.2f}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"test_set": "test_2016_flickr", "beam_size": 5, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
