"""Our native Transformer checkpoints written as Hugging Face Marian directories (the inverse of
marian.py): a directory that stock `transformers` loads and stock `ct2-transformers-converter` converts,
token for token (tests/integration/test_marian_export.py, tests/integration/test_ct2_engine.py). Nothing
here imports transformers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from safetensors.torch import save as save_safetensors

from model.architectures import Transformer, TransformerConfig, sinusoidal_positions
from model.formats.hf.base import ACTIVATION_TO_HF
from model.formats.hf.layout import layer_names
from model.formats.native import unique_state
from model.storage import resolve

START_LOGIT_BIAS = -1e4  # exported start/pad row: never predicted, out of the softmax (as CTranslate2 drops it)


@dataclass(frozen=True)
class MarianVocab:
    """One side's vocabulary as written for transformers / CTranslate2."""

    vocab: dict[str, int]  # vocab.json: piece -> Marian id
    order: list[int]  # order[marian id] = our id (rows of our embeddings in Marian's order)
    start: int  # Marian id of the decoder's start symbol, "<pad>"
    eos: int
    fold_start_from: int | None  # our id whose embedding moves into decoder position 0 (None: nothing to move)


def _vocab_from_sentencepiece(tokenizer, side: str) -> MarianVocab:
    """Our SentencePiece layout (pad 0, unk 1, bos 2, eos 3) in Marian's order: `</s>`, `<unk>`, the pieces,
    then the decoder's start symbol as `<pad>`, last (where CTranslate2's converter expects it). Our pad
    row is dropped: it only pads the encoder's input, where it is masked."""
    sp = tokenizer.source if side == "source" else tokenizer.target
    specials = (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id)
    order = [tokenizer.eos_id, tokenizer.unk_id] + [i for i in range(sp.get_piece_size()) if i not in specials]
    order.append(tokenizer.bos_id)
    vocab = {"</s>": 0, "<unk>": 1, **{sp.id_to_piece(old): new for new, old in enumerate(order[2:-1], start=2)},
             "<pad>": len(order) - 1}
    return MarianVocab(vocab, order, start=len(order) - 1, eos=0, fold_start_from=tokenizer.bos_id)


def _vocab_from_marian(tokenizer, side: str) -> MarianVocab:
    vocab = tokenizer.source_vocab if side == "source" else tokenizer.target_vocab
    return MarianVocab(dict(vocab), list(range(max(vocab.values()) + 1)), start=tokenizer.bos_id,
                       eos=tokenizer.eos_id, fold_start_from=None)


# Tokenizer kinds that can be written as a Marian vocabulary.
VOCAB_WRITERS = {"sentencepiece": _vocab_from_sentencepiece, "marian": _vocab_from_marian}


def marian_order(tokenizer, side: str = "target") -> list[int]:
    """order[marian id] = our id, for a model exported by `export_marian` (identity for Marian tokenizers)."""
    return VOCAB_WRITERS[tokenizer.kind](tokenizer, side).order


def _spm_files(tokenizer) -> tuple[bytes, bytes]:
    files, layout = tokenizer.files()
    if layout.get("type") == "marian":
        return files["source.spm"], files["target.spm"]
    return files[layout["source"]], files[layout["target"]]


def marian_tensors(model: Transformer, src: MarianVocab, tgt: MarianVocab, joint: bool,
                   max_positions: int) -> dict[str, torch.Tensor]:
    """Our weights under transformers' names, rows in Marian's order.

    The decoder's start embedding is folded into the decoder's position 0 and the start row is zero,
    because CTranslate2 starts decoding from a zero vector where transformers looks the start row up:
    both then feed the model exactly what ours does. The start logit sits out of the softmax, as
    CTranslate2 drops that row.
    """
    cfg = model.cfg
    state = {k: v.float() for k, v in unique_state(model).items()}
    target_table = state.get("tgt_embed.weight", state["src_embed.weight"])  # absent when shared
    hf: dict[str, torch.Tensor] = {hf_name: state[ours] for ours, hf_name in layer_names(cfg)}
    src_emb = state["src_embed.weight"][torch.tensor(src.order)]
    tgt_emb = target_table[torch.tensor(tgt.order)].clone()
    bias = state["output.bias"][torch.tensor(tgt.order)].clone()
    enc_pos, dec_pos = _position_tables(model, state, max_positions)
    if tgt.fold_start_from is not None:
        dec_pos[0] += model.embed_scale * target_table[tgt.fold_start_from]
        tgt_emb[tgt.start] = 0.0
        bias[tgt.start] = START_LOGIT_BIAS
        if joint:
            src_emb = tgt_emb
    hf.update({"final_logits_bias": bias[None, :], "model.encoder.embed_positions.weight": enc_pos,
               "model.decoder.embed_positions.weight": dec_pos})
    if joint:
        hf["model.shared.weight"] = src_emb
    if not joint or not cfg.tie_output:  # transformers 5 reads untied models' embeddings from the per-side keys
        hf["model.encoder.embed_tokens.weight"] = src_emb
        hf["model.decoder.embed_tokens.weight"] = tgt_emb
    if not cfg.tie_output:
        out = state["output.weight"][torch.tensor(tgt.order)].clone()
        if tgt.fold_start_from is not None:
            out[tgt.start] = 0.0
        hf["lm_head.weight"] = out
    return {k: v.contiguous() for k, v in hf.items()}


def marian_config(cfg: TransformerConfig, src: MarianVocab, tgt: MarianVocab, joint: bool,
                  max_positions: int) -> dict:
    return {
        "architectures": ["MarianMTModel"], "model_type": "marian",
        "vocab_size": len(src.order), "decoder_vocab_size": len(tgt.order),
        "d_model": cfg.d_model, "encoder_layers": cfg.enc_layers, "decoder_layers": cfg.dec_layers,
        "encoder_attention_heads": cfg.n_heads, "decoder_attention_heads": cfg.n_heads,
        "encoder_ffn_dim": cfg.ff_dim, "decoder_ffn_dim": cfg.ff_dim,
        "activation_function": ACTIVATION_TO_HF[cfg.activation], "max_position_embeddings": max_positions,
        "scale_embedding": cfg.scale_embedding, "dropout": cfg.dropout, "attention_dropout": cfg.attn_dropout,
        "activation_dropout": cfg.activation_dropout, "encoder_layerdrop": 0.0, "decoder_layerdrop": 0.0,
        "init_std": 0.02, "use_cache": True, "is_encoder_decoder": True,
        "pad_token_id": tgt.start, "decoder_start_token_id": tgt.start, "eos_token_id": tgt.eos,
        "forced_eos_token_id": tgt.eos, "bos_token_id": None, "share_encoder_decoder_embeddings": joint,
        "tie_word_embeddings": cfg.tie_output, "torch_dtype": "float32",
    }


def export_marian(model, tokenizer, uri: str, *, max_positions: int = 1024, generation: dict | None = None,
                  storage_options: dict | None = None) -> dict:
    """Write `model` (a Transformer) and its tokenizer as a Hugging Face Marian directory at `uri` that stock
    transformers loads and stock ct2-transformers-converter converts. Returns the written config.json."""
    if not isinstance(model, Transformer):
        raise ValueError(f"only Transformer models can be exported to the Marian format; this is a {model.arch!r} "
                         "model (the recurrent baselines have no Hugging Face equivalent)")
    if tokenizer.kind not in VOCAB_WRITERS:
        raise ValueError(f"cannot write a {tokenizer.kind!r} tokenizer as a Marian vocabulary")
    cfg = model.cfg
    max_positions = cfg.max_positions or max_positions
    src, tgt = (VOCAB_WRITERS[tokenizer.kind](tokenizer, side) for side in ("source", "target"))
    joint = src.vocab == tgt.vocab and cfg.share_embeddings
    config = marian_config(cfg, src, tgt, joint, max_positions)
    tok_config = {"tokenizer_class": "MarianTokenizer", "separate_vocabs": not joint, "unk_token": "<unk>",
                  "eos_token": "</s>", "pad_token": "<pad>", "model_max_length": max_positions}
    generation_config = {"bad_words_ids": [[tgt.start]], "decoder_start_token_id": tgt.start, "eos_token_id": tgt.eos,
                         "forced_eos_token_id": tgt.eos, "pad_token_id": tgt.start, **(generation or {})}
    source_spm, target_spm = _spm_files(tokenizer)
    files = {
        "model.safetensors": save_safetensors(marian_tensors(model, src, tgt, joint, max_positions),
                                              metadata={"format": "pt"}),
        "source.spm": source_spm, "target.spm": target_spm, "vocab.json": _json(src.vocab),
        "tokenizer_config.json": _json(tok_config), "generation_config.json": _json(generation_config),
    }
    if not joint:
        files["target_vocab.json"] = _json(tgt.vocab)
    fs, root = resolve(uri, storage_options)
    fs.makedirs(root, exist_ok=True)
    for name, data in files.items():
        fs.pipe_file(f"{root}/{name}", data)
    fs.pipe_file(f"{root}/config.json", _json(config))  # last: a directory with config.json is complete
    return config


def _position_tables(model: Transformer, state: dict, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = model.cfg
    if cfg.positions == "stored":
        return state["src_positions"][:rows].clone(), state["tgt_positions"][:rows].clone()
    table = model.positions.formula(rows, cfg.d_model) if hasattr(model, "positions") \
        else sinusoidal_positions(rows, cfg.d_model)
    return table.clone(), table.clone()


def _json(obj) -> bytes:
    return json.dumps(obj, indent=2, ensure_ascii=False).encode()


def generation_defaults(decode) -> dict:
    """Our decoding defaults as transformers' generation_config fields, where it has an equivalent.

    Our "average" length penalty is transformers' (score / length**alpha, EOS counted); our search stops
    a sentence once it has beam-size finished hypotheses (early_stopping=True). Our maximum length is
    relative to the source (a * S + b), which transformers cannot express: max_length is left to the user.
    """
    out = {"num_beams": decode.beam_size, "early_stopping": True}
    if decode.no_repeat_ngram_size:  # the same rule, token for token (tests/unit/test_marian.py)
        out["no_repeat_ngram_size"] = decode.no_repeat_ngram_size
    if decode.length_penalty == "average":
        out["length_penalty"] = decode.alpha
    elif decode.length_penalty == "none":
        out["length_penalty"] = 0.0
    return out

