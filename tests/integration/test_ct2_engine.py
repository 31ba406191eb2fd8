"""--engine ctranslate2: CTranslate2 decodes the model actors' batches, inside the same pipeline. The
shipped model exported and converted as the actor does at start, then decoded by both engines: whole-model
runs of tens of seconds, so they run with the integration tests."""

import os

import pyarrow as pa
import pytest
import sacrebleu

from model.decoding import DecodeConfig, translate_ids
from pipeline.columns import HYP_IDS, PIECES
from pipeline.io import read_table
from pipeline.stages import Detokenize, Tokenize, Translator

pytest.importorskip("ctranslate2")
pytest.importorskip("transformers")

from tests.conftest import ROOT

SHIPPED = os.path.join(ROOT, "models", "multi30k-en-de")


@pytest.fixture(scope="module")
def sample():
    table = read_table(os.path.join(ROOT, "samples", "multi30k-en-de"))
    n = 60
    sources = table.column("source").to_pylist()[:n]
    return (Tokenize(SHIPPED, "source", 256, "split", {})(pa.table({"id": list(range(n)), "source": sources})),
            table.column("reference").to_pylist()[:n])


@pytest.fixture(scope="module")
def ct2_actor():
    """One converted model for the module (each actor converts at start: a few seconds)."""
    return Translator(SHIPPED, DecodeConfig(beam_size=4), "fp32", 12000, 1, {}, engine="ctranslate2")


@pytest.fixture(scope="module")
def ct2_translated(sample, ct2_actor):
    """The actor's output for the sample (read by two tests)."""
    return ct2_actor(sample[0])


def test_the_shipped_model_translates_alike_in_both_engines(sample, ct2_translated):
    tokenized, refs = sample
    detok = Detokenize(SHIPPED, nbest=1, write_scores=True, storage_options={})
    ours = Translator(SHIPPED, DecodeConfig(beam_size=4), "fp32", 12000, 1, {})
    out = {"ours": detok(ours(tokenized)), "ctranslate2": detok(ct2_translated)}
    texts = {e: t.column("translation").to_pylist() for e, t in out.items()}
    same = sum(a == b for a, b in zip(texts["ours"], texts["ctranslate2"], strict=True))
    assert same >= 0.95 * len(refs), same
    bleu = {e: sacrebleu.corpus_bleu(t, [refs]).score for e, t in texts.items()}
    assert abs(bleu["ours"] - bleu["ctranslate2"]) < 0.5, bleu
    # The scores mean the same (logprob / length, EOS counted) where the translations agree.
    scores = {e: t.column("score").to_pylist() for e, t in out.items()}
    for a, b, ta, tb in zip(scores["ours"], scores["ctranslate2"], texts["ours"], texts["ctranslate2"], strict=True):
        if ta == tb:
            assert a == pytest.approx(b, abs=2e-3)


def pieces(tokenized):
    return [p[0] for p in tokenized.column(PIECES).to_pylist()]


def test_nbest_and_int8(sample, ct2_actor, ct2_translated):
    tokenized, _ = sample
    engine = ct2_actor.model  # the engine decodes with the DecodeConfig it is given per batch
    nbest, _ = translate_ids(engine, pieces(tokenized), DecodeConfig(beam_size=4, nbest=3), 12000,
                             search_batch=engine)
    for hyps in nbest:
        assert len(hyps) == 3 and [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    int8 = Translator(SHIPPED, DecodeConfig(beam_size=4), "int8", 12000, 1, {}, engine="ctranslate2")
    fp32 = ct2_translated.column(HYP_IDS).to_pylist()
    quantized = int8(tokenized).column(HYP_IDS).to_pylist()
    assert sum(a == b for a, b in zip(quantized, fp32, strict=True)) >= 0.6 * len(fp32)


def test_each_sentence_keeps_its_own_length_limit(sample, ct2_actor):
    """max_len = a * source length + b per sentence, as in ours, though CTranslate2 takes one limit per batch."""
    tokenized, _ = sample
    engine, sources = ct2_actor.model, pieces(tokenized)
    hyps, _ = translate_ids(engine, sources, DecodeConfig(beam_size=2, max_len_a=0.25, max_len_b=1), 12000,
                            search_batch=engine)
    limits = [int(0.25 * len(p) + 1) for p in sources]
    assert len(set(limits)) > 1  # the batches mix limits
    assert all(len(h[0].tokens) <= limit for h, limit in zip(hyps, limits, strict=True))
    assert any(len(h[0].tokens) == limit for h, limit in zip(hyps, limits, strict=True))  # the limits bind


def test_what_it_cannot_decode_is_refused_at_start(tiny_checkpoint):
    from jobs.translate_corpus import TranslateConfig
    from pipeline.runtime import check_supported
    from pipeline.settings import TranslationSettings
    from tests.helpers import tiny_rnn

    with pytest.raises(ValueError, match="runs Transformer models"):
        check_supported(tiny_rnn(), DecodeConfig(), ensemble=False)
    with pytest.raises(ValueError, match="length-penalty"):
        Translator(SHIPPED, DecodeConfig(length_penalty="gnmt"), "fp32", 12000, 1, {}, engine="ctranslate2")
    with pytest.raises(ValueError, match="single models"):
        TranslateConfig(ensemble=[tiny_checkpoint], translation=TranslationSettings(engine="ctranslate2"))


class RunsOutOfMemoryOverRows:
    """A CTranslate2 translator that fails as its CUDA allocator does on batches of more than `rows` rows."""

    def __init__(self, translator, rows: int):
        self.translator, self.rows, self.sizes = translator, rows, []

    def translate_batch(self, rows, **kwargs):
        self.sizes.append(len(rows))
        if len(rows) > self.rows:
            raise RuntimeError("CUDA failed with error out of memory")
        return self.translator.translate_batch(rows, **kwargs)


def test_a_batch_out_of_device_memory_is_split_and_translated_alike(sample, ct2_actor):
    """CTranslate2 reports a GPU out-of-memory as a RuntimeError: the batch is halved until it fits, as
    with ours, and the translations are those of one batch."""
    import copy

    tokenized, _ = sample
    engine = ct2_actor.model
    cfg = DecodeConfig(beam_size=4)
    whole, _ = translate_ids(engine, pieces(tokenized), cfg, 10**7, search_batch=engine)
    tight = copy.copy(engine)
    tight.translator = RunsOutOfMemoryOverRows(engine.translator, rows=8)
    split, _ = translate_ids(tight, pieces(tokenized), cfg, 10**7, search_batch=tight)
    sizes = tight.translator.sizes
    assert sizes[0] == len(pieces(tokenized)) and any(1 < n <= 8 for n in sizes)  # halved until it fit
    assert [[h.tokens for h in x] for x in split] == [[h.tokens for h in x] for x in whole]
    other = copy.copy(engine)
    other.translator = type("Broken", (), {"translate_batch": lambda self, rows, **kw: 1 / 0})()
    with pytest.raises(ZeroDivisionError):  # other errors are not taken for memory
        translate_ids(other, pieces(tokenized), cfg, 10**7, search_batch=other)


COUNT = " ".join(str(i) for i in range(1, 21))
OOH = "Oooooooooooooooooooooh!"


def test_translations_cut_at_the_length_limit_are_length_limit_and_the_guard_goes_through(ct2_actor):
    """CTranslate2 stops at the limit without EOS: those rows are length_limit as with ours (issue 31); and
    --no-repeat-ngram-size reaches its no_repeat_ngram_size."""
    table = Tokenize(SHIPPED, "source", 256, "split", {})(pa.table({"id": [0, 1, 2],
                                                                     "source": [COUNT, OOH, "A man rides a bike."]}))
    assert ct2_actor(table).column("status").to_pylist() == ["length_limit", "length_limit", "ok"]
    engine = ct2_actor.model
    hyps, _ = translate_ids(engine, pieces(table), DecodeConfig(beam_size=4, no_repeat_ngram_size=3), 12000,
                            search_batch=engine)
    assert [h[0].length_limited for h in hyps] == [True, False, False]  # the character loop is gone
    for h in hyps:
        grams = [tuple(h[0].tokens[i:i + 3]) for i in range(len(h[0].tokens) - 2)]
        assert len(grams) == len(set(grams))
