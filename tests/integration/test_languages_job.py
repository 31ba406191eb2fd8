"""Mixed-language stores through the translation job on a local Ray (--source-lang auto, --quality-flags)."""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.io import read_table
from tests.conftest import ROOT, SAMPLE

MODEL = os.path.join(ROOT, "models", "multi30k-en-de")
FRENCH = os.path.join(ROOT, "tests", "data", "multi30k_val_fr_300.txt")
FAST = ["--model", MODEL, "--beam-size", "2", "--cpus-per-actor", "1", "--actors", "1", "--batch-rows", "64"]


def test_a_mixed_store_into_german_with_the_shipped_model(local_ray, tmp_path):
    """English rows translated as a plain run translates them, German rows copied (same_language), French rows
    unsupported_language (the shipped model declares en->de), every row's language identified; and flags."""
    from jobs.translate_corpus import main as translate

    sample = read_table(SAMPLE).slice(0, 12)
    english, german = sample.column("source").to_pylist(), sample.column("reference").to_pylist()
    french = [line.strip() for line in open(FRENCH, encoding="utf-8")][:12]
    rows = [(f"en{i}", t, "en") for i, t in enumerate(english)] + [(f"de{i}", t, "de") for i, t in enumerate(german)]
    rows += [(f"fr{i}", t, "fr") for i, t in enumerate(french)] + [("short", "Ok", ""), ("empty", "", "")]
    rows = rows[::2] + rows[1::2]  # languages interleaved in both shards
    (tmp_path / "in").mkdir()
    for s, chunk in enumerate((rows[:19], rows[19:])):
        pq.write_table(pa.table({"id": [r[0] for r in chunk], "source": [r[1] for r in chunk]}),
                       tmp_path / "in" / f"part-{s}.parquet")
    assert translate(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "mixed"), *FAST,
                      "--source-lang", "auto", "--target-lang", "de", "--quality-flags"]) == 0
    (tmp_path / "plain").mkdir()
    pq.write_table(pa.table({"id": [f"en{i}" for i in range(12)], "source": english}), tmp_path / "plain" / "a.parquet")
    assert translate(["--input", str(tmp_path / "plain"), "--output", str(tmp_path / "plain-out"), *FAST]) == 0

    out = {r["id"]: r for r in read_table(str(tmp_path / "mixed" / "translations")).to_pylist()}
    plain = {r["id"]: r["translation"] for r in read_table(str(tmp_path / "plain-out" / "translations")).to_pylist()}
    assert len(out) == len(rows)
    assert all(out[i]["detected_lang"] == lang for i, _, lang in rows if lang)
    for i, text, lang in rows:
        row = out[i]
        if lang == "en":
            assert row["status"] == "ok" and row["translation"] == plain[i]
        elif lang == "de":
            assert row["status"] == "same_language" and row["translation"] == text and row["flags"] == []
        elif lang == "fr":
            assert row["status"] == "unsupported_language" and row["translation"] == ""
    assert out["short"]["status"] == "unknown_language" and out["short"]["detected_lang"] is None
    assert out["empty"]["status"] == "empty"
    assert all(isinstance(r["flags"], list) for r in out.values())

    report = json.load(open(tmp_path / "mixed" / "report.json"))
    assert report["overall"]["status"] == {"empty": 1, "ok": 12, "same_language": 12, "unknown_language": 1,
                                           "unsupported_language": 12}
    assert set(report["overall"]["flags"]) >= {"repeated_ngrams", "copied_source", "wrong_target_language",
                                               "length_ratio", "any"}
    assert report["language_pairs"]["en-de"]["sentences"] == 12
    assert report["language_pairs"]["de-de"]["status"] == {"same_language": 12}


def test_a_document_with_paragraphs_in_two_languages(local_ray, tmp_path):
    """Each paragraph's language is its own: the English one is translated, the German one kept as it is."""
    from jobs.translate_corpus import main as translate

    doc = ("A man in a blue shirt is standing on a ladder. He is cleaning a window.\n\n"
           "Ein Hund rennt über eine grüne Wiese. Die Sonne scheint.\n")
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": [1], "source": [doc]}), tmp_path / "in" / "a.parquet")
    assert translate(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), *FAST, "--unit", "document",
                      "--source-lang", "auto", "--target-lang", "de", "--write-segments"]) == 0
    row = pq.read_table(tmp_path / "out" / "translations" / "a.parquet").to_pylist()[0]
    english, german = row["translation"].split("\n\n")
    assert "Mann" in english and german == "Ein Hund rennt über eine grüne Wiese. Die Sonne scheint.\n"
    assert row["status"] == "ok" and row["detected_lang"] == "en"


def test_one_run_routes_rows_to_two_models_by_detected_language(local_ray, tmp_path):
    """--model A --model-for fr=B --source-lang auto: one output, each row translated by its language's model
    (as transformers translates it with that model), a pool per model, pairs in the report."""
    import torch

    from jobs.translate_corpus import main as translate
    from tests.marian_helpers import build_marian_dir, hf_model_and_tokenizer

    en_de = build_marian_dir(str(tmp_path / "en-de"), seed=0)
    fr_de = build_marian_dir(str(tmp_path / "fr-de"), activation="gelu", seed=2, eos_bias=2.0, source_lang="fr")
    english = read_table(SAMPLE).column("source").to_pylist()[:10]
    french = [line.strip() for line in open(FRENCH, encoding="utf-8")][:10]
    texts = english + french
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": list(range(20)), "source": texts}), tmp_path / "in" / "a.parquet")
    assert translate(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--model", en_de,
                      "--model-for", f"fr={fr_de}", "--source-lang", "auto", "--target-lang", "de", "--beam-size", "1",
                      "--max-len-a", "0", "--max-len-b", "20", "--batch-rows", "8", "--cpus-per-actor", "1"]) == 0

    def generate(path, sources):
        hf, tok = hf_model_and_tokenizer(path)
        with torch.no_grad():
            out = hf.generate(**tok(sources, return_tensors="pt", padding=True), num_beams=1, max_new_tokens=21,
                              min_new_tokens=1)
        return tok.batch_decode(out, skip_special_tokens=True)

    rows = read_table(str(tmp_path / "out" / "translations")).to_pylist()
    assert [r["id"] for r in rows] == list(range(20))
    got = [r["translation"] for r in rows]
    assert got[:10] == generate(en_de, english) and got[10:] == generate(fr_de, french)
    report = json.load(open(tmp_path / "out" / "report.json"))
    assert report["model"]["model_for"] == {"fr": fr_de}
    assert {p: e["sentences"] for p, e in report["language_pairs"].items()} == {"en-de": 10, "fr-de": 10}
