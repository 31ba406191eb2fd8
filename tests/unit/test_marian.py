"""Hugging Face Marian / OPUS-MT models run exactly as transformers runs them; ours export to transformers
and back (whole exported models in transformers and CTranslate2: tests/integration/test_marian_export.py).
Real transformers (a dev dependency), small random-weight models built here from a config, SentencePiece
models trained here: nothing is downloaded."""

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
