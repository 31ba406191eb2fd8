"""Our models exported to transformers (`jobs/convert_model.py --to marian`) and converted with CTranslate2's
stock converter translate as ours does: the shipped model, and a small Transformer trained here. Whole
models in three engines (tens of seconds each), so they run with the integration tests; the layer-by-layer
parity with transformers on random-weight models is tests/unit/test_marian.py."""

import functools
import json
import os

import pytest
import torch

from model.decoding import pad_batch
from model.decoding.beam import DecodeConfig
from model.formats import load_model
from tests.conftest import ROOT
from tests.marian_helpers import hf_model_and_tokenizer, sample_text


def ct2_convert(hf_dir: str, out: str) -> None:
    """The stock converter's own class, in this process (what `ct2-transformers-converter --model hf_dir
    --output_dir out` runs, and what the ctranslate2 engine runs at start: pipeline/runtime/ct2_engine.py).
    The command line itself, in its own process, is run by bench/engines.py (test_engines_bench.py)."""
    from ctranslate2.converters import TransformersConverter

    TransformersConverter(hf_dir).convert(out)


@functools.cache
def engines(native: str, hf_dir: str, ct2_dir: str):
    """The three engines, loaded once per model (they are only read). CTranslate2 at one thread: it sets
    the OpenMP thread count, which torch shares."""
    import ctranslate2

    return (load_model(native), hf_model_and_tokenizer(hf_dir),
            ctranslate2.Translator(ct2_dir, device="cpu", intra_threads=1))


def compare_engines(native: str, hf_dir: str, ct2_dir: str, sources: list[str], refs: list[str], beam: int,
                    limit: int = 200) -> dict:
    """Translations of ours, transformers and CTranslate2 with the same search settings, their BLEU, and
    which sentences ended before the length limit (the engines differ at the limit: transformers forces
    an EOS that costs nothing, ours one that costs its log-probability, CTranslate2 none at all).
    Texts are compared with whitespace normalised (transformers strips; our SentencePiece decoding can
    keep a trailing space)."""
    import sacrebleu

    from model.decoding import translate_ids

    ours, (hf, tok), translator = engines(native, hf_dir, ct2_dir)
    hyps, _ = translate_ids(ours.model, ours.tokenizer.encode_source(sources),
                            DecodeConfig(beam_size=beam, max_len_a=0, max_len_b=limit), 12000)
    out = {"ours": ours.tokenizer.decode_target([h[0].tokens for h in hyps])}
    with torch.no_grad():
        gen = hf.generate(**tok(sources, return_tensors="pt", padding=True), num_beams=beam, length_penalty=1.0,
                          early_stopping=True, max_new_tokens=limit + 1, min_new_tokens=1)
    out["transformers"] = tok.batch_decode(gen, skip_special_tokens=True)
    pieces = [tok.convert_ids_to_tokens(ids) for ids in tok(sources).input_ids]
    results = translator.translate_batch(pieces, beam_size=beam, length_penalty=1.0, max_decoding_length=limit + 1,
                                         min_decoding_length=1)
    out["ctranslate2"] = [tok.convert_tokens_to_string(r.hypotheses[0]) for r in results]
    result = {name: ([" ".join(t.split()) for t in texts], sacrebleu.corpus_bleu(texts, [refs]).score)
              for name, texts in out.items()}
    result["ended"] = [len(h[0].tokens) < limit for h in hyps]
    return result


def same_where_ended(result: dict, engine: str) -> bool:
    return all(a == b for a, b, ended in zip(result["ours"][0], result[engine][0], result["ended"], strict=True)
               if ended)


@pytest.fixture(scope="module")
def shipped_export(tmp_path_factory):
    from jobs.convert_model import main as convert

    root = tmp_path_factory.mktemp("export")
    native = os.path.join(ROOT, "models", "multi30k-en-de")
    assert convert(["--to", "marian", "--input", native, "--output", str(root / "hf")]) == 0
    pytest.importorskip("ctranslate2")
    ct2_convert(str(root / "hf"), str(root / "ct2"))
    return native, str(root / "hf"), str(root / "ct2")


def test_exported_shipped_model_translates_alike_in_transformers_and_ctranslate2(shipped_export):
    sources, refs = (x[:100] for x in sample_text())
    greedy = compare_engines(*shipped_export, sources, refs, beam=1)
    assert all(greedy["ended"])  # a trained model: no sentence reaches the limit
    assert greedy["transformers"][0] == greedy["ours"][0]
    assert greedy["ctranslate2"][0] == greedy["ours"][0]
    beam = compare_engines(*shipped_export, sources[:50], refs[:50], beam=5)  # greedy above takes all 100
    assert abs(beam["ctranslate2"][1] - beam["ours"][1]) <= 0.2
    assert abs(beam["transformers"][1] - beam["ours"][1]) <= 1.0
    config = json.load(open(os.path.join(shipped_export[1], "generation_config.json")))
    assert config["num_beams"] == 5 and config["bad_words_ids"] == [[config["pad_token_id"]]]


def test_exported_tiny_trained_model_translates_alike(tmp_path):
    """A small Transformer trained here (100 updates on the sample corpus: it ends most sentences and its
    translations depend on the input), exported and converted."""
    from jobs.convert_model import main as convert
    from model.architectures import label_smoothed_loss
    from model.formats import save_checkpoint
    from model.tokenizers import BOS_ID, EOS_ID, PAD_ID, Tokenizer, train_sentencepiece
    from tests.helpers import tiny_transformer

    sources, refs = sample_text()
    tok = Tokenizer(train_sentencepiece(sources + refs, vocab_size=300))
    torch.manual_seed(0)
    model = tiny_transformer(tok.src_vocab_size)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    pairs = list(zip(tok.encode_source(sources), tok.encode_target(refs), strict=True))
    model.train()
    for step in range(100):
        batch = pairs[(step * 32) % 288:(step * 32) % 288 + 32]
        loss, _, n = label_smoothed_loss(
            model(pad_batch([s for s, _ in batch], PAD_ID), pad_batch([t for _, t in batch], PAD_ID, prefix=BOS_ID)),
            pad_batch([t for _, t in batch], PAD_ID, suffix=EOS_ID), PAD_ID, 0.0)
        opt.zero_grad()
        (loss / n).backward()
        opt.step()
    native = str(tmp_path / "native")
    save_checkpoint(native, model.eval(), tok)
    assert convert(["--to", "marian", "--input", native, "--output", str(tmp_path / "hf")]) == 0
    ct2_convert(str(tmp_path / "hf"), str(tmp_path / "ct2"))
    result = compare_engines(native, str(tmp_path / "hf"), str(tmp_path / "ct2"), sources[:80], refs[:80], beam=1,
                             limit=60)
    assert len(set(result["ours"][0])) > 10  # it learned something input-dependent
    assert sum(result["ended"]) >= 40, sum(result["ended"])
    assert same_where_ended(result, "transformers") and same_where_ended(result, "ctranslate2")
    # At the limit transformers forces EOS as we do, so greedy agrees there too.
    assert result["transformers"][0] == result["ours"][0]
