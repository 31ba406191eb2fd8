"""Small Hugging Face M2M100 / NLLB directories built offline: random-weight `M2M100ForConditionalGeneration`s
from a config, one SentencePiece model trained here on English, German and French Multi30k text, and the
tokenizer files each family ships (M2M100: vocab.json + sentencepiece.bpe.model; NLLB: the SentencePiece
model alone, plus transformers' own tokenizer.json).

Needs transformers (a dev dependency); the pipeline itself never imports it.
"""

from __future__ import annotations

import json
import os
import random
import shutil

import sentencepiece as spm
import torch

from model.tokenizers.m2m100 import LANGUAGE_CODES
from tests.conftest import ROOT
from tests.marian_helpers import sample_text

FRENCH = os.path.join(ROOT, "tests", "data", "multi30k_val_fr_300.txt")


def french_text() -> list[str]:
    with open(FRENCH, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def _train_spm(path: str, vocab_size: int = 300) -> str:
    en, de = sample_text()
    lines = en + de + french_text()
    prefix = os.path.join(path, "spm")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=prefix, vocab_size=vocab_size, model_type="bpe",
        character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, hard_vocab_limit=False, minloglevel=2)
    return prefix + ".model"


def _m2m100_tokenizer_files(path: str, spm_file: str, seed: int):
    """vocab.json in a shuffled order: ids must come from it, never from SentencePiece's own ids."""
    from transformers import M2M100Tokenizer

    sp = spm.SentencePieceProcessor(model_file=spm_file)
    pieces = [sp.id_to_piece(i) for i in range(3, sp.get_piece_size())]
    random.Random(seed).shuffle(pieces)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, **{p: 4 + i for i, p in enumerate(pieces)}}
    with open(os.path.join(path, "vocab.json"), "w") as f:
        json.dump(vocab, f, ensure_ascii=False)
    shutil.copy(spm_file, os.path.join(path, "sentencepiece.bpe.model"))
    # As the hub's tokenizer_config.json does: the language tokens are special (skipped when decoding).
    tok = M2M100Tokenizer(vocab_file=os.path.join(path, "vocab.json"),
                          spm_file=os.path.join(path, "sentencepiece.bpe.model"), src_lang="en", tgt_lang="de",
                          additional_special_tokens=[f"__{c}__" for c in LANGUAGE_CODES["m2m100"]])
    tok.save_pretrained(path)
    return tok, len(vocab) + len(LANGUAGE_CODES["m2m100"]) + 8  # + fairseq's 8 made-up words, as M2M100 has


def _nllb_tokenizer_files(path: str, spm_file: str):
    """transformers' NllbTokenizer with the real NLLB id layout (pieces = SentencePiece id + 1, then the
    language codes, then <mask>), saved next to the SentencePiece model as the hub directories are."""
    from transformers import NllbTokenizer
    from transformers.convert_slow_tokenizer import SentencePieceExtractor
    from transformers.tokenization_utils_base import generate_merges

    proto = SentencePieceExtractor(spm_file).proto
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for p in proto.pieces[3:]:
        vocab[p.piece] = len(vocab)
    merges = generate_merges(dict(vocab))
    for code in LANGUAGE_CODES["nllb"]:
        vocab[code] = len(vocab)
    vocab["<mask>"] = len(vocab)
    tok = NllbTokenizer(vocab=vocab, merges=merges, extra_special_tokens=LANGUAGE_CODES["nllb"],
                        src_lang="eng_Latn", tgt_lang="deu_Latn",
                        _spm_precompiled_charsmap=proto.normalizer_spec.precompiled_charsmap or None)
    tok.save_pretrained(path)
    shutil.copy(spm_file, os.path.join(path, "sentencepiece.bpe.model"))
    return tok, len(vocab)


def build_m2m100_dir(path: str, *, kind: str = "m2m100", d_model: int = 32, layers: int = 2, heads: int = 4,
                     ffn: int = 64, max_positions: int = 128, activation: str = "relu", seed: int = 0,
                     weights: str = "safetensors", eos_bias: float = 3.0):
    """Write a random M2M100ForConditionalGeneration directory; returns (path, transformers' tokenizer)."""
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    os.makedirs(path, exist_ok=True)
    tmp = os.path.join(path, "_spm")
    os.makedirs(tmp, exist_ok=True)
    spm_file = _train_spm(tmp)
    tok, vocab_size = (_m2m100_tokenizer_files(path, spm_file, seed) if kind == "m2m100"
                       else _nllb_tokenizer_files(path, spm_file))
    shutil.rmtree(tmp)
    config = M2M100Config(
        vocab_size=vocab_size, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
        max_position_embeddings=max_positions, activation_function=activation, scale_embedding=True,
        dropout=0.0, attention_dropout=0.0, encoder_layerdrop=0.0, decoder_layerdrop=0.0,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)
    torch.manual_seed(seed)
    model = M2M100ForConditionalGeneration(config).eval()
    with torch.no_grad():  # weights large enough that the outputs depend on the input, and random norms
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(0.1 * torch.randn_like(p))
            elif p.dim() > 1:
                p.normal_(0, 0.25)
        emb = model.model.shared.weight
        emb[1].zero_()
        # Random models rarely end a sentence. The output layer is tied to the embeddings: pointing
        # </s>'s row along the final norm's bias adds ~eos_bias to its logit, so that translations of
        # many lengths come out.
        u = model.model.decoder.layer_norm.bias
        emb[2] = u * (eos_bias / u.dot(u))
    model.save_pretrained(path, safe_serialization=(weights == "safetensors"))
    if weights == "bin" and not os.path.exists(os.path.join(path, "pytorch_model.bin")):
        torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(path, "pytorch_model.bin"))
        os.remove(os.path.join(path, "model.safetensors"))
    return path, tok


def hf_model(path: str):
    from transformers import M2M100ForConditionalGeneration

    return M2M100ForConditionalGeneration.from_pretrained(path).eval()
