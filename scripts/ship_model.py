"""Pick, evaluate and package the default model: models/multi30k-en-de/ with its model card.

    python scripts/ship_model.py --run work/multi30k/model --data work/multi30k

Candidates are the run's best/ (best greedy validation BLEU during training) and average/ (mean of
the last checkpoints). Both are decoded with beam search on the validation set; the better one on
validation is shipped (the test set is never used to choose). Its test score is then measured, and
the weights are stored as fp32 when that fits the 30 MB budget, else as fp16 (halves the size; decoding
loads them as fp32). The shipped directory itself is then decoded on val and test, so the card's scores
are those of the weights users get (the fp32 scores are recorded beside them). The card records
the exact commands, the data, the scores with their signatures, size, hardware and training time.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from bench.evaluate import evaluate  # noqa: E402
from model.formats import load_checkpoint, save_checkpoint  # noqa: E402

PUBLISHED = 41.0  # text-only Transformer baselines on test_2016_flickr En->De (brief)


def card(meta: dict, params: int, size_mb: float, dtype: str) -> str:
    val, test = meta["evaluation"]["val"], meta["evaluation"]["test_2016_flickr"]
    tr = meta["training"]
    sig = test["bleu"]["signature"]
    gap = PUBLISHED - test["bleu"]["score"]
    lines = [
        "# multi30k-en-de: English to German Transformer (Multi30k)",
        "",
        "The default model of `jobs/translate_corpus.py`. Trained with this repository's jobs only.",
        "",
        f"## Scores of the shipped {dtype} weights (sacreBLEU, detokenized output against the raw references, "
        "beam 5)",
        "",
        "| set | sentences | BLEU | chrF | TER |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, ev in (("val", val), ("test_2016_flickr", test)):
        lines.append(f"| {name} | {ev['sentences']:,} | {ev['bleu']['score']:.2f} | {ev['chrf']['score']:.2f} | "
                     f"{ev['ter']['score']:.2f} |")
    lines += [
        "",
        f"BLEU signature: `{sig}`  ",
        f"chrF signature: `{test['chrf']['signature']}`  ",
        f"TER signature: `{test['ter']['signature']}`",
        "",
        *([f"Before rounding to fp16 (the fp32 checkpoint of the run): val BLEU {meta['evaluation_fp32']['val']:.2f}, "
           f"test_2016_flickr BLEU {meta['evaluation_fp32']['test_2016_flickr']:.2f}.", ""]
          if "evaluation_fp32" in meta else []),
        f"Published text-only Transformer baselines reach about {PUBLISHED:.0f} BLEU on test_2016_flickr; this "
        f"model is {abs(gap):.1f} BLEU {'below' if gap >= 0 else 'above'} that. " + meta["gap_note"],
        "",
        "## Model",
        "",
        f"- Transformer, {params:,} parameters, weights stored as {dtype} ({size_mb:.1f} MB on disk in all)",
        f"- Config: `{json.dumps(meta['model_config'], sort_keys=True)}`",
        f"- Shipped checkpoint: `{meta['chosen']}` of the training run, chosen on validation BLEU "
        f"({meta['candidates']})",
        "- Joint SentencePiece unigram vocabulary of 8,000 pieces, trained on the training split",
        "",
        "## Data",
        "",
        "Multi30k Task 1 (Elliott et al., 2016): English image descriptions with German translations, raw text,"
        " one sentence per line: train 29,000 pairs, val 1,014, test_2016_flickr 1,000. Training used train only;"
        " checkpoint selection used val; test was decoded once, at the end.",
        "",
        "## Training",
        "",
        f"- Hardware: {tr['hardware']}; autocast {meta['train_config'].get('autocast', '?')}",
        f"- Training time: {tr['seconds'] / 3600:.2f} h wall clock ({tr['step']:,} updates, {tr['epochs']} epochs, "
        f"{tr['target_tokens']:,} target tokens)" + (" in all stages" if len(meta["stages"]) > 1 else ""),
        *stage_lines(meta["stages"], meta["recipes"]),
        "- Commands, stage by stage (from the repository root):",
        "",
        "```bash",
        *[recipe["invocation"] for recipe in meta["recipes"]],
        "```",
        *[line for recipe in unique_scripts(meta["recipes"]) for line in
          ("", f"`{recipe['script']}`:", "", "```bash", *recipe["commands"], "```")],
    ]
    return "\n".join(lines) + "\n"


def parse_recipe(spec: str) -> dict:
    """A recipe as given to --recipe: a script, optionally preceded by the VAR=value settings it ran with."""
    words = shlex.split(spec)
    script = os.path.relpath(os.path.abspath(words[-1]), ROOT)
    with open(os.path.join(ROOT, script)) as f:
        commands = [line.rstrip() for line in f if not line.startswith("#")]
    return {"invocation": shlex.join([*words[:-1], "bash", script]), "script": script, "commands": commands}


def unique_scripts(recipes: list[dict]) -> list[dict]:
    seen: dict[str, dict] = {}
    for recipe in recipes:
        seen.setdefault(recipe["script"], recipe)
    return list(seen.values())


def stage_lines(stages: list[dict], recipes: list[dict]) -> list[str]:
    """One line per stage when there are several; each names the recipe that ran it when one was given
    per stage (stage 1 is trained from scratch, each later one starts from its predecessor's weights)."""
    if len(stages) < 2:
        return []
    lines = []
    for i, st in enumerate(stages):
        how = "from scratch" if i == 0 else f"from the weights of stage {i}"
        if len(recipes) == len(stages):
            how += f", `{recipes[i]['invocation']}`"
        lines.append(f"  - stage {i + 1} ({how}): {st['seconds'] / 3600:.2f} h, {st['step']:,} updates, "
                     f"{st['epochs']} epochs")
    return lines


def training_stages(metadata: dict) -> list[dict]:
    """The training stages behind a checkpoint, first to last: a run started with --init-model records the
    model it started from and that model's own training (itself perhaps started from another)."""
    stages, this = [], metadata
    while this:
        tr = this.get("training") or {}
        stages.append({"what": this.get("model", "this run"), "seconds": tr.get("seconds", 0.0),
                       "step": tr.get("step", 0), "epochs": tr.get("epochs", tr.get("epoch", 0)),
                       "target_tokens": tr.get("target_tokens", 0)})
        this = this.get("initialized_from")
    return stages[::-1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=os.path.join(ROOT, "work", "multi30k", "model"))
    p.add_argument("--data", default=os.path.join(ROOT, "work", "multi30k"))
    p.add_argument("--to", default=os.path.join(ROOT, "models", "multi30k-en-de"))
    p.add_argument("--hardware", default="2 vCPU (AMD EPYC, AVX512-BF16) VM, 24 GB RAM, no GPU; 1 Ray Train "
                   "worker with 2 torch threads")
    p.add_argument("--gap-note", default="")
    p.add_argument("--recipe", action="append", default=[],
                   help="the script that trained --run, as it was run (e.g. 'EPOCHS=8 "
                   "scripts/train_self_distilled.sh'); give it once per training stage, first to last; the "
                   "scripts' commands go into the card (default: scripts/train_default_model.sh)")
    args = p.parse_args()

    val, test = os.path.join(args.data, "val"), os.path.join(args.data, "test_2016_flickr")
    scores = {}
    for kind in ("best", "average"):
        path = os.path.join(args.run, kind)
        if os.path.exists(os.path.join(path, "config.json")):
            scores[kind] = evaluate(path, val)["overall"]["scores"]
            print(f"{kind}: val BLEU {scores[kind]['bleu']['score']:.2f}")
    chosen = max(scores, key=lambda k: scores[k]["bleu"]["score"])
    ckpt = load_checkpoint(os.path.join(args.run, chosen))
    test_eval = evaluate(os.path.join(args.run, chosen), test)["overall"]
    val_eval = {"sentences": 1014, **scores[chosen]}
    stages = training_stages(ckpt.metadata)
    recipes = [parse_recipe(spec) for spec in args.recipe or [os.path.join(ROOT, "scripts", "train_default_model.sh")]]
    meta = {
        "name": "multi30k-en-de",
        # The pair the model translates: --source-lang auto marks rows in other languages unsupported_language
        # (pipeline/languages/decide.py reads it from here).
        "languages": {"source": "en", "target": "de"},
        "model_config": ckpt.config["model"],
        "chosen": chosen,
        "candidates": ", ".join(f"{k} {v['bleu']['score']:.2f}" for k, v in scores.items()),
        "evaluation": {"val": val_eval, "test_2016_flickr": {"sentences": test_eval["sentences"],
                                                              **test_eval["scores"]}},
        "training": {"hardware": args.hardware, **{key: sum(st[key] for st in stages) for key in
                                                   ("seconds", "step", "epochs", "target_tokens")}},
        "stages": stages,
        "recipes": recipes,
        "gap_note": args.gap_note,
        "train_config": ckpt.metadata.get("train_config", {}),
    }
    if os.path.exists(args.to):
        shutil.rmtree(args.to)
    params = sum(p.numel() for p in ckpt.model.parameters())
    # fp32 keeps the shipped weights exactly those that were scored; fp16 only when fp32 would not fit.
    dtype = torch.float32 if params * 4 < 25e6 else torch.float16
    dtype_name = "fp32" if dtype == torch.float32 else "fp16"
    save_checkpoint(args.to, ckpt.model, ckpt.tokenizer, card="placeholder\n", metadata=meta, weights_dtype=dtype)
    size_mb = sum(os.path.getsize(os.path.join(args.to, f)) for f in os.listdir(args.to)) / 1e6
    if dtype != torch.float32:  # score what ships, not what was trained
        meta["evaluation_fp32"] = {"val": val_eval["bleu"]["score"],
                                   "test_2016_flickr": test_eval["scores"]["bleu"]["score"]}
        shipped_val, shipped_test = (evaluate(args.to, d)["overall"] for d in (val, test))
        meta["evaluation"] = {name: {"sentences": ev["sentences"], **ev["scores"]}
                              for name, ev in (("val", shipped_val), ("test_2016_flickr", shipped_test))}
    # The card goes in last, with the final size; save again so config.json records its hash.
    save_checkpoint(args.to, ckpt.model, ckpt.tokenizer, card=card(meta, params, size_mb, dtype_name), metadata=meta,
                    weights_dtype=dtype)
    shipped = meta["evaluation"]["test_2016_flickr"]["bleu"]["score"]
    print(f"shipped {chosen} ({dtype_name}) to {args.to}: test BLEU {shipped:.2f}, {size_mb:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
