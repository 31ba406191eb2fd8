"""Small Hugging Face Marian directories built offline: random-weight `MarianMTModel`s from a config, with
SentencePiece models trained here on the sample corpus and a Marian vocab.json (</s> 0, <unk> 1, <pad> last).

Needs transformers (a dev dependency); the pipeline itself never imports it.
"""

from __future__ import annotations

import json
import os
import shutil

import sentencepiece as spm
import torch

from pipeline.io import read_table
from tests.conftest import SAMPLE


def _train_spm(lines: list[str], vocab_size: int, path: str) -> None:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=path, vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, bos_id=-1, eos_id=2, unk_id=1, pad_id=-1, hard_vocab_limit=False, minloglevel=2)


def _pieces(model_file: str) -> list[str]:
    sp = spm.SentencePieceProcessor(model_file=model_file)
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not sp.is_control(i) and not sp.is_unknown(i)]


def _vocab(pieces: list[str]) -> dict[str, int]:
    vocab = {"</s>": 0, "<unk>": 1}
    for p in pieces:
        vocab.setdefault(p, len(vocab))
    vocab["<pad>"] = len(vocab)
    return vocab


def sample_text() -> tuple[list[str], list[str]]:
    table = read_table(SAMPLE)
    return table.column("source").to_pylist(), table.column("reference").to_pylist()


def build_marian_dir(path: str, *, shared: bool = True, activation: str = "swish", scale_embedding: bool = True,
                     d_model: int = 32, layers: int = 2, heads: int = 4, ffn: int = 64, max_positions: int = 128,
                     seed: int = 0, weights: str = "safetensors", init_std: float = 0.25,
                     eos_bias: float = 4.0, source_lang: str = "en", target_lang: str = "de") -> str:
    """Write a random MarianMTModel directory at `path` (what save_pretrained and the OPUS-MT hub repos hold)."""
    from transformers import MarianConfig, MarianMTModel

    os.makedirs(path, exist_ok=True)
    src, tgt = sample_text()
    tmp = os.path.join(path, "_spm")
    os.makedirs(tmp, exist_ok=True)
    _train_spm(src, 180, os.path.join(tmp, "src"))
    _train_spm(tgt, 150, os.path.join(tmp, "tgt"))
    shutil.copy(os.path.join(tmp, "src.model"), os.path.join(path, "source.spm"))
    shutil.copy(os.path.join(tmp, "tgt.model"), os.path.join(path, "target.spm"))
    src_pieces, tgt_pieces = _pieces(os.path.join(tmp, "src.model")), _pieces(os.path.join(tmp, "tgt.model"))
    shutil.rmtree(tmp)
    if shared:
        vocab = _vocab(src_pieces + tgt_pieces)
        src_size = tgt_size = len(vocab)
        pad = vocab["<pad>"]
        files = {"vocab.json": vocab}
    else:
        target_vocab = _vocab(tgt_pieces)
        vocab = _vocab(src_pieces)
        src_size, tgt_size = len(vocab), len(target_vocab)
        pad = target_vocab["<pad>"]  # the decoder starts from it; the source pads with its own <pad>
        files = {"vocab.json": vocab, "target_vocab.json": target_vocab}
    for name, data in files.items():
        with open(os.path.join(path, name), "w") as f:
            json.dump(data, f, ensure_ascii=False)
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "MarianTokenizer", "separate_vocabs": not shared, "source_lang": source_lang,
                   "target_lang": target_lang, "unk_token": "<unk>", "eos_token": "</s>", "pad_token": "<pad>",
                   "model_max_length": max_positions}, f)
    config = MarianConfig(
        vocab_size=src_size, decoder_vocab_size=tgt_size, d_model=d_model, encoder_layers=layers,
        decoder_layers=layers, encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn,
        decoder_ffn_dim=ffn, max_position_embeddings=max_positions, activation_function=activation,
        scale_embedding=scale_embedding, pad_token_id=pad, decoder_start_token_id=pad, eos_token_id=0,
        forced_eos_token_id=0, share_encoder_decoder_embeddings=shared, dropout=0.0, init_std=init_std)
    torch.manual_seed(seed)
    model = MarianMTModel(config).eval()
    with torch.no_grad():  # random layer norms and logit bias too, so every tensor's mapping is exercised
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(0.1 * torch.randn_like(p))
        model.final_logits_bias.normal_(0, 0.5)
        # A real model never predicts <pad> (it is never a target): keep the random model that way too.
        model.final_logits_bias[0, pad] = -10.0
        # and it ends its sentences: a push towards </s> gives translations of many lengths.
        model.final_logits_bias[0, 0] += eos_bias
    model.generation_config.bad_words_ids = [[pad]]
    model.save_pretrained(path, safe_serialization=(weights == "safetensors"))
    if weights == "bin" and not os.path.exists(os.path.join(path, "pytorch_model.bin")):
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        torch.save(state, os.path.join(path, "pytorch_model.bin"))
        os.remove(os.path.join(path, "model.safetensors"))
    return path


def hf_model_and_tokenizer(path: str):
    from transformers import MarianMTModel, MarianTokenizer

    return MarianMTModel.from_pretrained(path).eval(), MarianTokenizer.from_pretrained(path)
