"""Hugging Face Marian / OPUS-MT models run exactly as transformers runs them; ours export to transformers
and CTranslate2. Real transformers and CTranslate2 (dev dependencies), small random-weight models built
here from a config, SentencePiece models trained here: nothing is downloaded."""

import functools
import json
import os
import pickle
from dataclasses import replace

import pyarrow as pa
import pytest
import torch

from model.decoding import pad_batch
from model.decoding.beam import DecodeConfig, beam_search, greedy_search
from model.errors import CheckpointError
from model.formats import load_model, load_tokenizer, model_info
from pipeline.columns import HYP_IDS, PIECES
from pipeline.stages import Detokenize, Tokenize, Translator
from tests.conftest import ROOT
from tests.marian_helpers import build_marian_dir, hf_model_and_tokenizer, sample_text

pytest.importorskip("transformers")
SHAPES = {
    "shared-swish": dict(shared=True, activation="swish", scale_embedding=True),
    "separate-relu": dict(shared=False, activation="relu", scale_embedding=False, seed=1),
    "shared-gelu": dict(shared=True, activation="gelu", scale_embedding=True, seed=2),
}
SOURCES = sample_text()[0][:60]


@pytest.fixture(scope="module", params=sorted(SHAPES))
def marian(request, tmp_path_factory):
    path = build_marian_dir(str(tmp_path_factory.mktemp("hf") / request.param), **SHAPES[request.param])
    hf, tok = hf_model_and_tokenizer(path)
    return path, hf, tok, load_model(path)


def hf_generated(tok, hf, out) -> list[list[int]]:
    """Generated ids without the decoder start token, EOS and padding."""
    return [[t for t in row[1:] if t not in (hf.config.pad_token_id, hf.config.eos_token_id)] for row in out.tolist()]


class HFForcedEOS:
    """transformers' convention at the length limit (ForcedEOSTokenLogitsProcessor): the forced EOS costs
    nothing. Ours, like fairseq's, charges the model's EOS log-probability. This wrapper gives our search
    transformers' convention, so that every other part of beam search can be compared token for token."""

    def __init__(self, model, max_len: int):
        self.model, self.max_len, self.cfg = model, max_len, model.cfg

    def __getattr__(self, name):
        return getattr(self.model, name)

    def decode_step(self, prev, memory, state):
        logits, new = self.model.decode_step(prev, memory, state)
        if state.step == self.max_len:
            logits = torch.full_like(logits, -1e9)
            logits[:, self.cfg.eos_id] = 0.0
        return logits, new


def test_position_table_is_transformers_marian_table():
    from transformers.models.marian.modeling_marian import MarianSinusoidalPositionalEmbedding

    from model.architectures.transformer import marian_positions, sinusoidal_positions

    theirs = MarianSinusoidalPositionalEmbedding(200, 64)
    theirs.weight.data = theirs.create_weight()
    assert torch.equal(marian_positions(200, 64), theirs.weight.data)
    assert (marian_positions(200, 64) - sinusoidal_positions(200, 64)).abs().max() > 1.0  # not our formula


def test_tokenization_matches_marian_tokenizer(marian):
    path, hf, tok, ours = marian
    sources = SOURCES + [">>de<< A man sleeps.", "Ünïcödé ☃ and 漢字 text.", ""]
    enc = tok(sources)
    assert ours.tokenizer.encode_source(sources) == enc.input_ids
    targets = sample_text()[1][:20]
    ids = [ids[:-1] for ids in tok(text_target=targets).input_ids]  # transformers appends </s> to labels
    assert ours.tokenizer.encode_target(targets) == ids
    assert ours.tokenizer.decode_target(ids) == tok.batch_decode(ids, skip_special_tokens=True)


def test_encoder_output_and_first_step_logits_match(marian):
    path, hf, tok, ours = marian
    enc = tok(SOURCES, return_tensors="pt", padding=True)
    model = ours.model
    src = pad_batch(ours.tokenizer.encode_source(SOURCES), model.cfg.source_pad_id)
    with torch.no_grad():
        theirs = hf.get_encoder()(input_ids=enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state
        start = torch.full((len(SOURCES), 1), hf.config.decoder_start_token_id)
        their_logits = hf(**enc, decoder_input_ids=start).logits[:, 0]
        x = model._embed("src", src)
        mask = src.ne(model.cfg.source_pad_id)[:, None, None, :]
        for layer in model.encoder:
            x = layer(x, mask)
        memory = model.encode(src)
        logits, _ = model.decode_step(torch.full((len(SOURCES),), model.cfg.bos_id), memory, model.init_state(memory))
    real = enc.attention_mask.bool()
    assert (x - theirs)[real].abs().max() < 1e-4
    assert (logits - their_logits).abs().max() < 1e-4


def test_greedy_and_beam_search_match_generate(marian):
    path, hf, tok, ours = marian
    enc = tok(SOURCES, return_tensors="pt", padding=True)  # one batch of mixed lengths
    src = pad_batch(ours.tokenizer.encode_source(SOURCES), ours.model.cfg.source_pad_id)
    limit = 30
    common = dict(max_new_tokens=limit + 1, min_new_tokens=1)  # ours: limit tokens + EOS, at least one token
    greedy = greedy_search(ours.model, src, DecodeConfig(beam_size=1, max_len_a=0, max_len_b=limit))
    with torch.no_grad():
        out = hf.generate(**enc, num_beams=1, **common)
    assert [h[0].tokens for h in greedy] == hf_generated(tok, hf, out)

    cfg = DecodeConfig(beam_size=4, max_len_a=0, max_len_b=limit, length_penalty="average", alpha=0.6)
    with torch.no_grad():
        out = hf.generate(**enc, num_beams=4, length_penalty=0.6, early_stopping=True, **common)
    theirs = hf_generated(tok, hf, out)
    assert [h[0].tokens for h in beam_search(HFForcedEOS(ours.model, limit), src, cfg)] == theirs
    # With our own convention, only sentences whose beams reached the limit can differ.
    plain = beam_search(ours.model, src, cfg)
    reached = [len(t) >= limit - 1 for t in theirs]
    assert all(h[0].tokens == t for h, t, r in zip(plain, theirs, reached, strict=True) if not r)
    assert sum(not r for r in reached) >= 10, sum(not r for r in reached)  # the comparison is not empty
    # Detokenized as transformers does (skip_special_tokens), decoder start token left out.
    texts = ours.tokenizer.decode_target(theirs)
    assert texts == tok.batch_decode(out[:, 1:], skip_special_tokens=True)


@pytest.fixture(scope="module")
def looping_marian(tmp_path_factory):
    """Random Marian models with a weak push towards </s>: most of their translations loop to the limit.
    Built on first use, one per shape."""
    built = {}

    def get(shape):
        if shape not in built:
            path = build_marian_dir(str(tmp_path_factory.mktemp("loops") / shape), eos_bias=1.0, **SHAPES[shape])
            built[shape] = (path, *hf_model_and_tokenizer(path), load_model(path))
        return built[shape]

    return get


# Every n and both vocabulary layouts (shared; separate target vocabulary), each n on one of them.
@pytest.mark.parametrize("shape, n", [("shared-swish", 1), ("separate-relu", 2), ("shared-swish", 3)])
def test_no_repeat_ngram_size_matches_generate(looping_marian, shape, n):
    """--no-repeat-ngram-size is transformers' no_repeat_ngram_size, token for token (issue 31), greedy and
    beam, on sentences of every length in one batch."""
    path, hf, tok, ours = looping_marian(shape)
    enc = tok(SOURCES, return_tensors="pt", padding=True)
    src = pad_batch(ours.tokenizer.encode_source(SOURCES), ours.model.cfg.source_pad_id)
    limit = 30
    common = dict(max_new_tokens=limit + 1, min_new_tokens=1, no_repeat_ngram_size=n)
    cfg = DecodeConfig(beam_size=1, max_len_a=0, max_len_b=limit, no_repeat_ngram_size=n)
    greedy = [h[0].tokens for h in greedy_search(ours.model, src, cfg)]
    with torch.no_grad():
        out = hf.generate(**enc, num_beams=1, **common)
    assert greedy == hf_generated(tok, hf, out)
    unguarded = [h[0].tokens for h in greedy_search(ours.model, src, replace(cfg, no_repeat_ngram_size=0))]
    assert sum(a != b for a, b in zip(greedy, unguarded, strict=True)) >= 3  # the guard is at work here

    cfg = DecodeConfig(beam_size=4, max_len_a=0, max_len_b=limit, length_penalty="average", alpha=0.6,
                       no_repeat_ngram_size=n)
    with torch.no_grad():
        out = hf.generate(**enc, num_beams=4, length_penalty=0.6, early_stopping=True, **common)
    beams = [h[0].tokens for h in beam_search(HFForcedEOS(ours.model, limit), src, cfg)]
    assert beams == hf_generated(tok, hf, out)
    unguarded = [h[0].tokens for h in beam_search(HFForcedEOS(ours.model, limit), src,
                                                  replace(cfg, no_repeat_ngram_size=0))]
    assert sum(a != b for a, b in zip(beams, unguarded, strict=True)) >= 3


def test_weights_from_pytorch_model_bin_load_weights_only(tmp_path):
    path = build_marian_dir(str(tmp_path / "bin"), weights="bin")
    assert os.path.exists(os.path.join(path, "pytorch_model.bin"))
    hf, tok = hf_model_and_tokenizer(path)
    ours = load_model(path)
    src = pad_batch(ours.tokenizer.encode_source(SOURCES[:10]), ours.model.cfg.source_pad_id)
    out = hf.generate(**tok(SOURCES[:10], return_tensors="pt", padding=True), num_beams=1, max_new_tokens=21,
                      min_new_tokens=1)
    ours_out = greedy_search(ours.model, src, DecodeConfig(beam_size=1, max_len_a=0, max_len_b=20))
    assert [h[0].tokens for h in ours_out] == hf_generated(tok, hf, out)
    assert model_info(path).weights_sha256  # the resume fingerprint covers .bin weights too


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_that_runs_code_is_refused_and_not_executed(tmp_path):
    path = build_marian_dir(str(tmp_path / "hostile"), weights="bin")
    marker = tmp_path / "pwned"
    with open(os.path.join(path, "pytorch_model.bin"), "wb") as f:
        torch.save({"model.shared.weight": _RunsCode(marker)}, f)
    with pytest.raises(CheckpointError, match="pytorch_model.bin is not a plain tensor file") as e:
        load_model(path)
    assert "\n" not in str(e.value) and not marker.exists()
    with open(os.path.join(path, "pytorch_model.bin"), "wb") as f:
        pickle.dump(_RunsCode(marker), f)
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["vocab.json", "source.spm", "target.spm"])
def test_a_missing_tokenizer_file_is_one_line_naming_it(tmp_path, name):
    path = build_marian_dir(str(tmp_path / "m"))
    os.remove(os.path.join(path, name))
    for load in (load_model, load_tokenizer):
        with pytest.raises(CheckpointError, match=f"missing tokenizer file {name}") as e:
            load(path)
        assert "\n" not in str(e.value)


def test_sources_longer_than_the_positions_are_split_and_targets_stop_in_time(tmp_path):
    path = build_marian_dir(str(tmp_path / "short"), max_positions=16)
    table = pa.table({"id": [1, 2], "source": [" ".join(SOURCES[:6]), "A dog."]})
    tokenized = Tokenize(path, "source", 256, "split", {})(table)
    pieces = tokenized.column(PIECES).to_pylist()
    assert tokenized.column("status").to_pylist() == ["split", "ok"]
    assert len(pieces[0]) > 1 and all(len(p) <= 16 for p in pieces[0])
    out = Translator(path, DecodeConfig(beam_size=3, max_len_a=3.0, max_len_b=50), "fp32", 4000, 1, {})(tokenized)
    hyps = out.column(HYP_IDS).to_pylist()
    assert all(len(h[0]) <= 15 * len(p) for h, p in zip(hyps, pieces, strict=True))  # 15 + EOS per piece
    assert Detokenize(path, 1, False, {})(out).num_rows == 2


def test_convert_from_marian_and_back(tmp_path):
    from jobs.convert_model import main as convert

    path = build_marian_dir(str(tmp_path / "hf"), **SHAPES["separate-relu"])
    hf, tok = hf_model_and_tokenizer(path)
    native = str(tmp_path / "native")
    assert convert(["--from", "marian", "--input", path, "--output", native]) == 0
    assert json.load(open(os.path.join(native, "config.json")))["format"] == "nmt-batch-checkpoint"
    assert model_info(native).format == "native"
    cfg = DecodeConfig(beam_size=4, max_len_a=0, max_len_b=25)
    a, b = load_model(path), load_model(native)
    src = pad_batch(a.tokenizer.encode_source(SOURCES), a.model.cfg.source_pad_id)
    assert b.tokenizer.encode_source(SOURCES) == a.tokenizer.encode_source(SOURCES)
    assert [h[0].tokens for h in beam_search(a.model, src, cfg)] == [h[0].tokens for h in beam_search(b.model, src,
                                                                                                      cfg)]
    # and back to a Hugging Face directory that transformers runs as the original
    again = str(tmp_path / "again")
    assert convert(["--to", "marian", "--input", native, "--output", again]) == 0
    hf2, tok2 = hf_model_and_tokenizer(again)
    enc = tok(SOURCES, return_tensors="pt", padding=True)
    args = dict(num_beams=1, max_new_tokens=21, min_new_tokens=1)
    assert torch.equal(hf.generate(**enc, **args), hf2.generate(**tok2(SOURCES, return_tensors="pt", padding=True),
                                                                **args))


def test_recurrent_models_are_refused_for_export_with_one_line(tmp_path, capsys):
    from jobs.convert_model import main as convert
    from model.formats import save_checkpoint
    from model.tokenizers import Tokenizer, train_sentencepiece
    from tests.helpers import tiny_rnn

    tok = Tokenizer(train_sentencepiece(SOURCES * 3, vocab_size=100))
    save_checkpoint(str(tmp_path / "rnn"), tiny_rnn(tok.src_vocab_size), tok)
    assert convert(["--to", "marian", "--input", str(tmp_path / "rnn"), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only Transformer models" in err[0]


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
