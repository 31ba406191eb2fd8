"""model/formats/registry.py model_info: the resume fingerprint covers every file that decides a translation."""

import json
import os
import shutil

import pytest
import torch

from jobs.translate_corpus import TranslateConfig, fingerprint
from model.formats import model_info, save_checkpoint
from model.tokenizers import Tokenizer, train_sentencepiece
from pipeline.inputs import Columns
from tests.helpers import tiny_transformer
from tests.unit.test_tokenizer import CORPUS

COLUMNS = Columns("id", "source", None)


def fingerprint_of(*uris: str) -> dict:
    return fingerprint(TranslateConfig(), [model_info(uri) for uri in uris], COLUMNS)


@pytest.fixture(scope="module")
def marian_dirs(tmp_path_factory):
    """A Marian directory with sharded safetensors weights, and copies that differ in one file each."""
    pytest.importorskip("transformers")
    from safetensors.torch import load_file, save_file

    from tests.marian_helpers import build_marian_dir

    root = tmp_path_factory.mktemp("marian")
    single = build_marian_dir(str(root / "single"))
    base = str(root / "sharded")
    shutil.copytree(single, base)
    os.remove(os.path.join(base, "model.safetensors"))
    state = load_file(os.path.join(single, "model.safetensors"))
    names = sorted(state)
    weight_map = {}
    for i, keys in enumerate((names[: len(names) // 2], names[len(names) // 2:])):
        shard = f"model-0000{i + 1}-of-00002.safetensors"
        save_file({k: state[k] for k in keys}, os.path.join(base, shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(keys, shard))
    with open(os.path.join(base, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)

    other_shard = str(root / "other-shard")  # same index, other bytes in the second shard
    shutil.copytree(base, other_shard)
    second = os.path.join(other_shard, "model-00002-of-00002.safetensors")
    tensors = load_file(second)
    key = next(iter(tensors))
    tensors[key] = tensors[key] + 1.0
    save_file(tensors, second, metadata={"format": "pt"})

    other_vocab = str(root / "other-vocab")  # two pieces' ids swapped
    shutil.copytree(base, other_vocab)
    with open(os.path.join(other_vocab, "vocab.json")) as f:
        vocab = json.load(f)
    a, b = list(vocab)[10:12]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    with open(os.path.join(other_vocab, "vocab.json"), "w") as f:
        json.dump(vocab, f)
    return {"single": single, "sharded": base, "other-shard": other_shard, "other-vocab": other_vocab}


def test_sharded_weights_are_fingerprinted_by_every_shard(marian_dirs):
    """Issue 31: two directories with other shard bytes hashed alike (the index alone was hashed)."""
    assert fingerprint_of(marian_dirs["sharded"]) != fingerprint_of(marian_dirs["other-shard"])
    info = model_info(marian_dirs["sharded"])
    assert {"model.safetensors.index.json", "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors"} <= set(info.files_sha256)


def test_vocabularies_sentencepiece_models_and_configs_are_fingerprinted(marian_dirs):
    assert fingerprint_of(marian_dirs["sharded"]) != fingerprint_of(marian_dirs["other-vocab"])
    files = model_info(marian_dirs["single"]).files_sha256
    assert {"config.json", "generation_config.json", "tokenizer_config.json", "source.spm", "target.spm",
            "vocab.json", "model.safetensors"} <= set(files)
    # every ensemble member counts
    assert fingerprint_of(marian_dirs["single"], marian_dirs["sharded"]) != fingerprint_of(
        marian_dirs["single"], marian_dirs["other-vocab"])


def test_our_checkpoints_are_fingerprinted_by_their_recorded_hashes_not_their_card(tmp_path):
    tok_a = Tokenizer(train_sentencepiece(CORPUS, vocab_size=100))
    tok_b = Tokenizer(train_sentencepiece(list(reversed(CORPUS)) + ["zebra xylophone quartz"], vocab_size=100))
    torch.manual_seed(0)
    model = tiny_transformer(tok_a.src_vocab_size)
    save_checkpoint(str(tmp_path / "a"), model, tok_a, metadata={"note": "first"})
    save_checkpoint(str(tmp_path / "a-card"), model, tok_a, metadata={"note": "second"}, card="# another card\n")
    save_checkpoint(str(tmp_path / "b"), model, tok_b)
    a, a_card, b = (fingerprint_of(str(tmp_path / n)) for n in ("a", "a-card", "b"))
    assert a == a_card  # card and metadata do not change a translation
    assert a["model_weights"] == b["model_weights"] and a != b  # same weights, another SentencePiece model
