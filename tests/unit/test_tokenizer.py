import pytest

from model.tokenizers import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer, train_sentencepiece

CORPUS = [
    "A man in a blue shirt is standing on a ladder.",
    "Two dogs run across the green grass.",
    "Ein Mann in einem blauen Hemd steht auf einer Leiter.",
    "Zwei Hunde laufen über das grüne Gras.",
    "A little girl climbing into a wooden playhouse.",
    "Ein kleines Mädchen klettert in ein Spielhaus aus Holz.",
] * 20


@pytest.fixture(scope="module")
def joint():
    return Tokenizer(train_sentencepiece(CORPUS, vocab_size=120))


def test_special_ids_and_round_trip(joint):
    sp = joint.source
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (PAD_ID, UNK_ID, BOS_ID, EOS_ID)
    text = ["Zwei Hunde laufen über das grüne Gras.", "A man is standing."]
    ids = joint.encode_source(text)
    assert all(row[-1] == EOS_ID for row in ids)
    assert joint.decode_target([row[:-1] for row in ids]) == text
    assert joint.joint and joint.src_vocab_size == joint.tgt_vocab_size


def test_separate_vocabularies():
    en = train_sentencepiece([s for s in CORPUS if s[0] in "AT"], vocab_size=60)
    de = train_sentencepiece([s for s in CORPUS if s[0] in "EZ"], vocab_size=70)
    tok = Tokenizer(en, de)
    assert not tok.joint
    assert tok.decode_target(tok.encode_target(["Ein Mann steht."])) == ["Ein Mann steht."]


def test_foreign_special_ids_are_refused():
    import io

    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS),
        model_writer=out,
        vocab_size=60,
        hard_vocab_limit=False,
        minloglevel=2,
    )  # default ids: unk=0 bos=1 eos=2
    with pytest.raises(ValueError, match="special ids"):
        Tokenizer(out.getvalue())
