"""Hugging Face M2M100 directories (M2M100 and NLLB-200): run them as transformers does.

Both families are `M2M100ForConditionalGeneration` checkpoints: `config.json` with
`"model_type": "m2m_100"`, weights in `model.safetensors` or `pytorch_model.bin`, and a
SentencePiece model with a vocabulary (model/tokenizers/m2m100.py). What differs from our
own Transformer is carried by the config, not by branches downstream:

- pre-norm layers with a final layer norm after each stack (`pre_norm`);
- fairseq's sinusoidal table, whose first token takes row pad_id + 1 (`position_offset`);
  the table is computed from the formula (transformers never stores it);
- `scale_embedding`, shared embeddings tied to the output layer, no output bias;
- ids: `<s>` 0, `<pad>` 1, `</s>` 2, `<unk>` 3; decoding starts from `</s>` and the target
  language token is forced next (the search's per-row prefix), at no cost, as transformers'
  `forced_bos_token_id` does.

Nothing here imports transformers.
"""

from __future__ import annotations

from functools import partial

import torch

from model.architectures import TransformerConfig
from model.errors import CheckpointError
from model.formats.hf import base
from model.formats.hf.base import ACTIVATION_FROM_HF
from model.formats.hf.layout import layer_names
from model.tokenizers import load_m2m100_tokenizer


def transformer_config(hf: dict, where: str) -> TransformerConfig:
    """Our TransformerConfig for an M2M100 config.json; CheckpointError for what we cannot run exactly."""
    need = partial(base.need, hf, where)

    for a, b in (("encoder_attention_heads", "decoder_attention_heads"), ("encoder_ffn_dim", "decoder_ffn_dim")):
        if hf.get(a) != hf.get(b):
            raise CheckpointError(f"{where}: {a} and {b} differ ({hf.get(a)}, {hf.get(b)}); unsupported")
    act = hf.get("activation_function", "relu")
    if act not in ACTIVATION_FROM_HF:
        raise CheckpointError(f"{where}: activation {act!r} is not supported (known: {sorted(ACTIVATION_FROM_HF)})")
    pad = need("pad_token_id")
    vocab = need("vocab_size")
    tied = hf.get("tie_word_embeddings", True)
    return TransformerConfig(
        src_vocab_size=vocab, tgt_vocab_size=vocab, d_model=need("d_model"), n_heads=need("encoder_attention_heads"),
        enc_layers=need("encoder_layers"), dec_layers=need("decoder_layers"), ff_dim=need("encoder_ffn_dim"),
        dropout=hf.get("dropout", 0.1), attn_dropout=hf.get("attention_dropout", 0.0),
        activation_dropout=hf.get("activation_dropout", 0.0), share_embeddings=True, tie_output=tied,
        pad_id=pad, bos_id=hf.get("decoder_start_token_id", need("eos_token_id")), eos_id=need("eos_token_id"),
        activation=ACTIVATION_FROM_HF[act], scale_embedding=hf.get("scale_embedding", True),
        positions="fairseq", position_offset=pad + 1, max_positions=hf.get("max_position_embeddings", 1024),
        pre_norm=True)


def our_state(hf_state: dict[str, torch.Tensor], cfg: TransformerConfig, where: str) -> dict[str, torch.Tensor]:
    take = partial(base.take, hf_state, where)

    state = {ours: take(hf) for ours, hf in layer_names(cfg)}
    state["src_embed.weight"] = take("model.shared.weight", "model.encoder.embed_tokens.weight")
    if not cfg.tie_output:
        state["output.weight"] = take("lm_head.weight")
    state["output.bias"] = torch.zeros(cfg.tgt_vocab_size)  # M2M100 has no final_logits_bias
    return state


def load_m2m100(uri: str, device="cpu", dtype=None, storage_options: dict | None = None):
    """(model, tokenizer, config.json, generation_config.json) of an M2M100/NLLB directory."""
    return base.load_hf_directory(uri, device, dtype, storage_options, load_m2m100_tokenizer,
                                  lambda hf, hf_state, tokenizer, uri: transformer_config(hf, uri), our_state)
