import io
import json

import pytest
import torch

from model.decoding.beam import DecodeConfig, beam_search
from model.errors import CheckpointError
from model.formats.native import load_checkpoint, read_config, save_checkpoint
from model.tokenizers import Tokenizer, train_sentencepiece
from tests.helpers import tiny_rnn, tiny_transformer
from tests.unit.test_tokenizer import CORPUS


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(train_sentencepiece(CORPUS, vocab_size=100))


def same_model(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def round_trip(uri, model, tokenizer, **kw):
    save_checkpoint(uri, model, tokenizer, metadata={"note": "test"}, **kw)
    ckpt = load_checkpoint(uri, **kw)
    assert same_model(model, ckpt.model)
    assert ckpt.tokenizer.source_bytes == tokenizer.source_bytes
    assert ckpt.metadata["note"] == "test"
    src = torch.tensor([[5, 6, 7, 3]])
    cfg = DecodeConfig(beam_size=2, max_len_b=4)
    assert beam_search(model.eval(), src, cfg)[0][0].tokens == beam_search(ckpt.model, src, cfg)[0][0].tokens
    return ckpt


@pytest.mark.parametrize("make", [tiny_transformer, lambda v: tiny_rnn(v, attention="bahdanau")])
def test_local_dir_round_trip(tmp_path, tokenizer, make):
    model = make(tokenizer.src_vocab_size)
    ckpt = round_trip(str(tmp_path / "ckpt"), model, tokenizer)
    # tied embeddings survive: one tensor, used twice
    assert ckpt.model.output.weight.data_ptr() == ckpt.model.tgt_embed.weight.data_ptr()
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "spm.model",
    ]


def test_file_url_and_memory_round_trip(tmp_path, tokenizer):
    model = tiny_transformer(tokenizer.src_vocab_size)
    round_trip(f"file://{tmp_path}/ckpt", model, tokenizer)
    round_trip("memory://checkpoints/tiny", model, tokenizer)


def test_s3_round_trip(s3_server, s3_bucket, tokenizer):
    model = tiny_rnn(tokenizer.src_vocab_size, attention="luong_dot")
    round_trip(f"{s3_bucket}/models/tiny", model, tokenizer, storage_options=s3_server.storage_options)


def test_separate_vocabularies_round_trip(tmp_path):
    en = train_sentencepiece([s for s in CORPUS if s[0] in "AT"], vocab_size=60)
    de = train_sentencepiece([s for s in CORPUS if s[0] in "EZ"], vocab_size=70)
    tok = Tokenizer(en, de)
    model = tiny_transformer(
        share_embeddings=False, src_vocab_size=tok.src_vocab_size, tgt_vocab_size=tok.tgt_vocab_size
    )
    ckpt = round_trip(str(tmp_path / "sep"), model, tok)
    assert not ckpt.tokenizer.joint
    assert ckpt.tokenizer.target_bytes == de


def test_fp16_weights_halve_the_file(tmp_path, tokenizer):
    model = tiny_transformer(tokenizer.src_vocab_size)
    save_checkpoint(str(tmp_path / "a"), model, tokenizer)
    save_checkpoint(str(tmp_path / "b"), model, tokenizer, weights_dtype=torch.float16)
    size = lambda d: (tmp_path / d / "model.safetensors").stat().st_size  # noqa: E731
    assert size("b") < 0.6 * size("a")
    loaded = load_checkpoint(str(tmp_path / "b")).model
    assert next(loaded.parameters()).dtype == torch.float32


@pytest.fixture
def saved(tmp_path, tokenizer):
    uri = str(tmp_path / "ckpt")
    save_checkpoint(uri, tiny_transformer(tokenizer.src_vocab_size), tokenizer)
    return tmp_path / "ckpt"


def test_tampered_weights_are_refused(saved):
    data = bytearray((saved / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF  # one flipped byte inside a tensor
    (saved / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors.*sha256"):
        load_checkpoint(str(saved))


class _RunsCode:
    """Unpickling this creates a marker file: proof that a pickle was executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _replace_weights(saved, data: bytes) -> None:
    """Put `data` in place of the weights, with a matching hash (an attacker who rewrote config.json too)."""
    import hashlib

    (saved / "model.safetensors").write_bytes(data)
    config = json.loads((saved / "config.json").read_text())
    config["files"]["model.safetensors"] = hashlib.sha256(data).hexdigest()
    (saved / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("kind", ["pickle", "torch.save zip"])
def test_pickle_in_place_of_safetensors_is_refused_and_never_run(saved, tmp_path, kind):
    import pickle

    marker = tmp_path / "pwned"
    if kind == "pickle":
        data = pickle.dumps({"x": _RunsCode(marker)}, protocol=2)
    else:
        buf = io.BytesIO()
        torch.save({"x": _RunsCode(marker)}, buf)
        data = buf.getvalue()
    _replace_weights(saved, data)
    with pytest.raises(CheckpointError, match="model.safetensors is not a valid safetensors file"):
        load_checkpoint(str(saved))
    assert not marker.exists()


def test_safetensors_whose_first_byte_is_0x80_loads(tmp_path):
    """A safetensors file starts with its header length (little-endian u64): for ~1 in 32 model shapes
    the first byte is 0x80, which an earlier check mistook for a pickle."""
    tok = Tokenizer(train_sentencepiece(CORPUS, vocab_size=100))
    model = tiny_transformer(16, d_model=8, n_heads=2, enc_layers=2, dec_layers=2, ff_dim=16)
    uri = tmp_path / "shape"
    save_checkpoint(str(uri), model, tok)
    assert (uri / "model.safetensors").read_bytes()[:1] == b"\x80"  # the case this test is about
    assert same_model(model, load_checkpoint(str(uri)).model)


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "spm.model"])
def test_missing_file_is_named(saved, name):
    (saved / name).unlink()
    with pytest.raises(CheckpointError, match=f"missing file {name}"):
        load_checkpoint(str(saved))


def test_malformed_config_is_named(saved):
    (saved / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        read_config(str(saved))


def test_config_that_does_not_fit_the_weights(saved):
    config = json.loads((saved / "config.json").read_text())
    config["model"]["d_model"] = 64
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(str(saved))


def test_average_cli_writes_the_mean_of_the_weights(tmp_path, tokenizer):
    from training.average import main as average_main

    models = [tiny_transformer(tokenizer.src_vocab_size) for _ in range(2)]
    for i, m in enumerate(models):
        torch.manual_seed(i)
        for p in m.parameters():
            torch.nn.init.normal_(p)
        save_checkpoint(str(tmp_path / f"c{i}"), m, tokenizer, metadata={"training": {"step": 10 * (i + 1)}})
    assert average_main([str(tmp_path / "c0"), str(tmp_path / "c1"), "--output", str(tmp_path / "avg")]) == 0
    avg = load_checkpoint(str(tmp_path / "avg"))
    for k, v in avg.model.state_dict().items():
        expected = (models[0].state_dict()[k] + models[1].state_dict()[k]) / 2
        assert torch.allclose(v, expected, atol=1e-6), k
    assert avg.metadata["averaged_steps"] == [10, 20]
