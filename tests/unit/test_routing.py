"""--model-for: rows routed by language to two random-weight Marian models (built here), through the routed stages
called directly (no Ray): each row gets the translation transformers gives for its own route's model."""

import os

import pyarrow as pa
import pytest
import torch

from model.decoding import DecodeConfig
from pipeline.columns import DETECTED, ROUTE
from pipeline.languages import ModelLanguages, Routes, by_route, merge_rows, parse_model_for, pool_sizes
from pipeline.languages.stage import detect_languages
from pipeline.settings import LanguageChoice
from tests.conftest import ROOT
from tests.marian_helpers import build_marian_dir, hf_model_and_tokenizer, sample_text

FRENCH = [line.strip() for line in open(os.path.join(ROOT, "tests", "data", "multi30k_val_fr_300.txt"),
                                        encoding="utf-8")][:6]
ENGLISH = sample_text()[0][:6]
LIMIT = 20


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("routes")
    return (build_marian_dir(str(root / "en-de"), shared=True, activation="swish", seed=0),
            build_marian_dir(str(root / "fr-de"), shared=True, activation="gelu", seed=2, eos_bias=2.0,
                             source_lang="fr"))


def generate(path: str, sources: list[str]) -> list[str]:
    hf, tok = hf_model_and_tokenizer(path)
    with torch.no_grad():
        out = hf.generate(**tok(sources, return_tensors="pt", padding=True), num_beams=1, max_new_tokens=LIMIT + 1,
                          min_new_tokens=1)
    return tok.batch_decode(out, skip_special_tokens=True)


def test_rows_routed_by_detected_language_get_their_own_models_translation(two_models):
    from pipeline.stages import RoutedDetokenize, RoutedTokenize, Translator

    en_de, fr_de = two_models
    texts = [t for pair in zip(ENGLISH, FRENCH, strict=True) for t in pair]  # interleaved
    table = detect_languages(pa.table({"id": list(range(len(texts))), "source": texts}), "source", 0.5)
    assert table.column(DETECTED).to_pylist() == ["en", "fr"] * 6
    choice = LanguageChoice("auto", "de")
    tok = RoutedTokenize(Routes(("fr",)), [(en_de, ModelLanguages("en", "de")), (fr_de, ModelLanguages("fr", "de"))],
                         "source", 256, "split", {}, choice)
    decode = DecodeConfig(beam_size=1, max_len_a=0, max_len_b=LIMIT)
    pools = [Translator(uri, decode, "fp32", max_tokens=4000, torch_threads=1, storage_options={}, route=r)
             for r, uri in enumerate(two_models)]
    detok = RoutedDetokenize([en_de, fr_de], nbest=1, write_scores=False, storage_options={}, source_column="source")
    out = tok(table)
    assert out.column(ROUTE).to_pylist() == [0, 1] * 6
    for pool in pools:  # one pool after the other, as in the pipeline: each decodes its route's rows
        out = pool(out)
    out = detok(out)
    got = out.column("translation").to_pylist()
    assert got[0::2] == generate(en_de, ENGLISH)
    assert got[1::2] == generate(fr_de, FRENCH)
    assert generate(en_de, FRENCH) != got[1::2]  # the models differ: the French rows were decoded by their own
    assert set(out.column("status").to_pylist()) <= {"ok", "length_limit"}
    assert out.column("id").to_pylist() == list(range(12))


def test_a_pool_passes_other_routes_rows_on_untouched():
    table = pa.table({"x": [1, 2, 3, 4], ROUTE: pa.array([0, 1, 0, 1], pa.int32())})
    part = pa.table({"y": ["b", "d"]})
    merged = merge_rows(table, [1, 3], part, ["y"])
    assert merged.column("y").to_pylist() == [None, "b", None, "d"]
    doubled = by_route(table, {0: lambda t: t.append_column("z", pa.array([v * 10 for v in t.column("x").to_pylist()])),
                               1: lambda t: t.append_column("z", pa.array([-v for v in t.column("x").to_pylist()]))},
                       table.column(ROUTE).to_pylist())
    assert doubled.column("z").to_pylist() == [10, -2, 30, -4]


def test_routes_and_pool_sizes():
    assert parse_model_for(["de=s3://m/de-en", "FR=/m/fr-en"]) == (("de", "s3://m/de-en"), ("fr", "/m/fr-en"))
    with pytest.raises(ValueError, match="LANG=URI"):
        parse_model_for(["s3://m/de-en"])
    with pytest.raises(ValueError, match="two models"):
        parse_model_for(["de=a", "de=b"])
    assert Routes(("de", "fr")).of(["de", "en", "", "fr", "deu_Latn"]) == [1, 0, 0, 2, 1]
    assert pool_sizes([0.6, 0.3, 0.1], 6) == [3, 2, 1]
    assert pool_sizes([0.5, 0.5], 1) == [1, 1]  # every route gets an actor
    assert sum(pool_sizes([0.7, 0.2, 0.1], 10)) == 10
