"""Hugging Face Marian / OPUS-MT directories: run them as transformers does.

A Marian directory (what `MarianMTModel.save_pretrained` writes, and what the
thousand-odd Helsinki-NLP/opus-mt-* models are) holds `config.json`, weights in
`model.safetensors` (or `pytorch_model.bin`, or shards with an index), `source.spm`,
`target.spm`, `vocab.json` (+ `target_vocab.json`), `tokenizer_config.json` and
`generation_config.json`. The architecture is our Transformer's (post-norm, BART-style
layer names); what differs is carried by the config, not by branches downstream:

- positions: transformers' own sinusoidal formula (`positions="marian"`), or the tables
  stored in the weights when the file has them (`positions="stored"`);
- activation (`swish` in most OPUS-MT models), `scale_embedding`, `final_logits_bias`;
- ids: `</s>` = 0, `<unk>` = 1, `<pad>` last, decoding starts from the pad id, which is
  never generated (our search never emits the start id);
- `max_position_embeddings`: sources are split to fit, targets stop in time.

Writing our models as such a directory is the inverse, in marian_export.py. Nothing here imports transformers.
"""

from __future__ import annotations

from functools import partial

import torch

from model.architectures import TransformerConfig
from model.errors import CheckpointError
from model.formats.hf import base
from model.formats.hf.base import ACTIVATION_FROM_HF
from model.formats.hf.layout import layer_names
from model.tokenizers import load_marian_tokenizer


def transformer_config(hf: dict, has_stored_positions: bool, where: str, src_pad_id: int = -1) -> TransformerConfig:
    """Our TransformerConfig for a Marian config.json; CheckpointError for what we cannot run exactly."""
    need = partial(base.need, hf, where)

    if hf.get("encoder_attention_heads") != hf.get("decoder_attention_heads"):
        heads = (hf.get("encoder_attention_heads"), hf.get("decoder_attention_heads"))
        raise CheckpointError(f"{where}: encoder and decoder attention heads differ {heads}; unsupported")
    if hf.get("encoder_ffn_dim") != hf.get("decoder_ffn_dim"):
        raise CheckpointError(f"{where}: encoder and decoder feed-forward sizes differ; unsupported")
    for flag in ("normalize_before", "add_final_layer_norm", "normalize_embedding"):
        if hf.get(flag):
            raise CheckpointError(f"{where}: config.json sets {flag}, which Marian models do not; unsupported")
    act = hf.get("activation_function", "gelu")
    if act not in ACTIVATION_FROM_HF:
        raise CheckpointError(f"{where}: activation {act!r} is not supported (known: {sorted(ACTIVATION_FROM_HF)})")
    vocab = need("vocab_size")
    shared = hf.get("share_encoder_decoder_embeddings", True)
    # transformers 5 unties every embedding (and the output layer) when tie_word_embeddings is false.
    tied = hf.get("tie_word_embeddings", True)
    pad = need("pad_token_id")
    return TransformerConfig(
        src_vocab_size=vocab, tgt_vocab_size=hf.get("decoder_vocab_size") or vocab, d_model=need("d_model"),
        n_heads=need("encoder_attention_heads"), enc_layers=need("encoder_layers"),
        dec_layers=need("decoder_layers"), ff_dim=need("encoder_ffn_dim"), dropout=hf.get("dropout", 0.1),
        attn_dropout=hf.get("attention_dropout", 0.0), activation_dropout=hf.get("activation_dropout", 0.0),
        share_embeddings=shared and tied, tie_output=tied, pad_id=pad,
        bos_id=hf.get("decoder_start_token_id", pad), eos_id=need("eos_token_id"),
        activation=ACTIVATION_FROM_HF[act], scale_embedding=hf.get("scale_embedding", False),
        positions="stored" if has_stored_positions else "marian",
        max_positions=hf.get("max_position_embeddings", 1024), src_pad_id=src_pad_id)


def our_state(hf_state: dict[str, torch.Tensor], cfg: TransformerConfig, where: str) -> dict[str, torch.Tensor]:
    """transformers' tensors renamed to ours (aliases and unused tables dropped)."""
    take = partial(base.take, hf_state, where)

    state = {ours: take(hf) for ours, hf in layer_names(cfg)}
    if cfg.share_embeddings:
        state["src_embed.weight"] = take("model.shared.weight", "model.encoder.embed_tokens.weight")
    else:
        state["src_embed.weight"] = take("model.encoder.embed_tokens.weight", "model.shared.weight")
        state["tgt_embed.weight"] = take("model.decoder.embed_tokens.weight", "model.shared.weight")
    if not cfg.tie_output:
        state["output.weight"] = take("lm_head.weight")
    bias = hf_state.get("final_logits_bias")
    state["output.bias"] = bias.reshape(-1) if bias is not None else torch.zeros(cfg.tgt_vocab_size)
    if cfg.positions == "stored":
        state["src_positions"] = take("model.encoder.embed_positions.weight")
        state["tgt_positions"] = take("model.decoder.embed_positions.weight")
    return state


def _config_of(hf: dict, hf_state: dict[str, torch.Tensor], tokenizer, uri: str) -> TransformerConfig:
    stored = "model.encoder.embed_positions.weight" in hf_state and "model.decoder.embed_positions.weight" in hf_state
    # With separate vocabularies the source side pads with its own "<pad>" entry (transformers pads with
    # the tokenizer's pad id and masks by attention_mask; we mask by the padding id, so it must be the source's).
    src_pad = tokenizer.source_vocab.get("<pad>", -1) if tokenizer.separate_vocabs else -1
    return transformer_config(hf, stored, uri, src_pad)


def load_marian(uri: str, device="cpu", dtype=None, storage_options: dict | None = None):
    """(model, tokenizer, config.json, generation_config.json) of a Marian directory, run as transformers runs it."""
    return base.load_hf_directory(uri, device, dtype, storage_options, load_marian_tokenizer, _config_of, our_state)
