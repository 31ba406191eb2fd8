"""M2M100 / NLLB-200 directories run exactly as transformers runs them, with the target language chosen per row.

Real transformers (a dev dependency), small random-weight `M2M100ForConditionalGeneration`s built from a
config, one SentencePiece model trained here on English, German and French text: nothing is downloaded."""

import os

import pytest
import torch

from model.decoding import pad_batch
from model.decoding.beam import DecodeConfig, beam_search, greedy_search
from model.formats import load_model, load_tokenizer
from tests.m2m100_helpers import build_m2m100_dir, french_text, hf_model
from tests.marian_helpers import sample_text

pytest.importorskip("transformers")
EN, DE = sample_text()
SOURCES = EN[:24] + DE[:8] + french_text()[:8]
LANGS = {"m2m100": ("en", "de", "fr"), "nllb": ("eng_Latn", "deu_Latn", "fra_Latn")}


@pytest.fixture(scope="module", params=["m2m100", "nllb"])
def family(request, tmp_path_factory):
    path, tok = build_m2m100_dir(str(tmp_path_factory.mktemp(request.param) / "hf"), kind=request.param,
                                 activation="relu" if request.param == "m2m100" else "gelu")
    return request.param, path, tok, hf_model(path), load_model(path)


def row_languages(kind):
    """Source languages as the texts are; target German and French interleaved."""
    en, de, fr = LANGS[kind]
    src = [en] * 24 + [de] * 8 + [fr] * 8
    tgt = [[de, fr][i % 2] if s != de else fr for i, s in enumerate(src)]
    return src, tgt


def our_inputs(ours, src_langs, tgt_langs):
    tok = ours.tokenizer
    pieces, prefixes = [], []
    for ids, s, t in zip(tok.source_ids(SOURCES), src_langs, tgt_langs, strict=True):
        src_prefix, tgt_prefix = tok.language_prefixes(s, t)
        pieces.append(src_prefix + ids + [tok.eos_id])
        prefixes.append(tgt_prefix)
    return pad_batch(pieces, ours.model.cfg.source_pad_id), torch.tensor(prefixes)


def their_inputs(tok, src_langs, tgt_langs):
    """transformers' encoding, one source language at a time (its tokenizer holds one src_lang)."""
    rows = []
    for text, s in zip(SOURCES, src_langs, strict=True):
        tok.src_lang = s
        rows.append(tok(text).input_ids)
    enc = tok.pad({"input_ids": rows}, return_tensors="pt")
    starts = torch.tensor([[2, tok.convert_tokens_to_ids(t if "_" in t else f"__{t}__")] for t in tgt_langs])
    return enc, starts


def test_tokenization_matches_transformers(family):
    kind, path, tok, hf, ours = family
    texts = SOURCES + ["Ünïcödé ☃ and 漢字 text.", "A  double  space", ""]
    for lang in LANGS[kind]:
        tok.src_lang = lang
        src_prefix, _ = ours.tokenizer.language_prefixes(lang, LANGS[kind][1])
        assert [src_prefix + ids + [2] for ids in ours.tokenizer.source_ids(texts)] == tok(texts).input_ids
    tok.tgt_lang = LANGS[kind][2]
    labels = tok(text_target=DE[:20]).input_ids  # [target language] pieces </s>
    assert [ids[1:-1] for ids in labels] == ours.tokenizer.encode_target(DE[:20])
    assert [row[0] for row in labels] == [ours.tokenizer.language_prefixes(LANGS[kind][0], LANGS[kind][2])[1][0]] * 20
    assert ours.tokenizer.decode_target(labels) == tok.batch_decode(labels, skip_special_tokens=True)
    assert ours.tokenizer.language_prefixes(LANGS[kind][0], "xx_Unknown") is None


def test_encoder_output_and_first_step_logits_match(family):
    kind, path, tok, hf, ours = family
    src_langs, tgt_langs = row_languages(kind)
    src, prefix = our_inputs(ours, src_langs, tgt_langs)
    enc, starts = their_inputs(tok, src_langs, tgt_langs)
    assert torch.equal(src, enc.input_ids)
    model = ours.model
    with torch.no_grad():
        theirs = hf.get_encoder()(**enc).last_hidden_state
        their_logits = hf(**enc, decoder_input_ids=starts).logits  # (B, 2, V): after </s>, after the language
        memory = model.encode(src)
        state = model.init_state(memory)
        first, state = model.decode_step(starts[:, 0], memory, state)
        second, _ = model.decode_step(starts[:, 1], memory, state)
        x = model._embed("src", src)
        for layer in model.encoder:
            x = layer(x, src.ne(1)[:, None, None, :])
        x = model.enc_norm(x)
    real = enc.attention_mask.bool()
    assert (x - theirs)[real].abs().max() < 1e-4
    assert (first - their_logits[:, 0]).abs().max() < 1e-4
    assert (second - their_logits[:, 1]).abs().max() < 1e-4


class HFForcedEOS:
    """transformers' forced EOS at the length limit costs nothing; ours (fairseq's) charges its log-probability.
    This wrapper gives our search transformers' convention (as in test_marian.py)."""

    def __init__(self, model, at_step: int):
        self.model, self.at_step, self.cfg = model, at_step, model.cfg

    def __getattr__(self, name):
        return getattr(self.model, name)

    def decode_step(self, prev, memory, state):
        logits, new = self.model.decode_step(prev, memory, state)
        if state.step == self.at_step:
            logits = torch.full_like(logits, -1e9)
            logits[:, self.cfg.eos_id] = 0.0
        return logits, new


def generated(out) -> list[list[int]]:
    """transformers' rows without the </s> start, the language token, EOS and padding."""
    return [[t for t in row[2:] if t not in (1, 2)] for row in out.tolist()]


def test_greedy_and_beam_match_generate_with_target_languages_mixed_in_one_batch(family):
    kind, path, tok, hf, ours = family
    src_langs, tgt_langs = row_languages(kind)
    src, prefix = our_inputs(ours, src_langs, tgt_langs)
    enc, starts = their_inputs(tok, src_langs, tgt_langs)
    limit = 20
    # Ours counts the translation's tokens only; transformers' max_new_tokens leaves the given prefix out too.
    common = dict(max_new_tokens=limit + 1, min_new_tokens=1, decoder_input_ids=starts, forced_eos_token_id=2)
    greedy = greedy_search(ours.model, src, DecodeConfig(beam_size=1, max_len_a=0, max_len_b=limit), prefix)
    with torch.no_grad():
        out = hf.generate(**enc, num_beams=1, **common)
    theirs = generated(out)
    assert [h[0].tokens for h in greedy] == theirs
    assert sum(len(t) < limit for t in theirs) >= 10  # many sentences end on their own
    assert ours.tokenizer.decode_target(theirs) == tok.batch_decode(out, skip_special_tokens=True)

    cfg = DecodeConfig(beam_size=4, max_len_a=0, max_len_b=limit, length_penalty="average", alpha=1.0)
    with torch.no_grad():
        out = hf.generate(**enc, num_beams=4, length_penalty=1.0, early_stopping=True, **common)
    beams = beam_search(HFForcedEOS(ours.model, limit + 1), src, cfg, prefix)  # prefix fed at steps 0-1
    assert [h[0].tokens for h in beams] == generated(out)
    # The same languages for every row: the prefix is exactly transformers' forced_bos_token_id.
    de = tok.convert_tokens_to_ids(LANGS[kind][1] if kind == "nllb" else "__de__")
    with torch.no_grad():
        forced = hf.generate(**enc, num_beams=1, max_length=limit + 3, min_length=3, forced_bos_token_id=de,
                             forced_eos_token_id=2)
    same = greedy_search(ours.model, src, DecodeConfig(beam_size=1, max_len_a=0, max_len_b=limit),
                         torch.full((len(SOURCES), 1), de))
    assert [h[0].tokens for h in same] == generated(forced)


@pytest.mark.parametrize("n", [1, 2])
def test_no_repeat_ngram_size_counts_the_target_language_token_as_generate_does(family, n):
    """transformers' no_repeat_ngram_size reads the decoder's whole input: the start token and the forced
    target-language token are part of its n-grams; ours too (rows of two target languages in one batch)."""
    kind, path, tok, hf, ours = family
    src_langs, tgt_langs = row_languages(kind)
    src, prefix = our_inputs(ours, src_langs, tgt_langs)
    enc, starts = their_inputs(tok, src_langs, tgt_langs)
    limit = 20
    common = dict(max_new_tokens=limit + 1, min_new_tokens=1, decoder_input_ids=starts, forced_eos_token_id=2,
                  no_repeat_ngram_size=n)
    cfg = DecodeConfig(beam_size=1, max_len_a=0, max_len_b=limit, no_repeat_ngram_size=n)
    with torch.no_grad():
        out = hf.generate(**enc, num_beams=1, **common)
    assert [h[0].tokens for h in greedy_search(ours.model, src, cfg, prefix)] == generated(out)
    cfg = DecodeConfig(beam_size=4, max_len_a=0, max_len_b=limit, length_penalty="average", alpha=1.0,
                       no_repeat_ngram_size=n)
    with torch.no_grad():
        out = hf.generate(**enc, num_beams=4, length_penalty=1.0, early_stopping=True, **common)
    assert [h[0].tokens for h in beam_search(HFForcedEOS(ours.model, limit + 1), src, cfg, prefix)] == generated(out)


def test_convert_from_m2m100_runs_the_same(tmp_path, family):
    from jobs.convert_model import main as convert

    kind, path, tok, hf, ours = family
    assert convert(["--from", "m2m100", "--input", path, "--output", str(tmp_path / "native")]) == 0
    native = load_model(str(tmp_path / "native"))
    src_langs, tgt_langs = row_languages(kind)
    src, prefix = our_inputs(ours, src_langs, tgt_langs)
    cfg = DecodeConfig(beam_size=3, max_len_a=0, max_len_b=15)
    assert [h[0].tokens for h in beam_search(native.model, src, cfg, prefix)] == \
        [h[0].tokens for h in beam_search(ours.model, src, cfg, prefix)]
    assert load_tokenizer(str(tmp_path / "native")).language_prefixes("de", "fr") == \
        ours.tokenizer.language_prefixes("de", "fr")


def test_weights_from_pytorch_model_bin(tmp_path):
    path, _ = build_m2m100_dir(str(tmp_path / "bin"), weights="bin", d_model=16, layers=1, heads=2, ffn=32)
    assert os.path.exists(os.path.join(path, "pytorch_model.bin"))
    hf = hf_model(path)
    ours = load_model(path)
    src = torch.tensor([ours.tokenizer.encode_source(["A dog runs."])[0]])
    with torch.no_grad():
        theirs = hf(input_ids=src, decoder_input_ids=torch.tensor([[2]])).logits[:, 0]
        memory = ours.model.encode(src)
        logits, _ = ours.model.decode_step(torch.tensor([2]), memory, ours.model.init_state(memory))
    assert (logits - theirs).abs().max() < 1e-4
