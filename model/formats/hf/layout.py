"""What Hugging Face's BART-family translation models (Marian, M2M100, NLLB) share: tensor names and weight files.

Our Transformer's layers map one to one onto transformers' `model.{encoder,decoder}.layers.N.*`
names; the model families differ only in embeddings, positions, norms and vocabularies, which
their own modules (model/formats/hf/marian.py, model/formats/hf/m2m100.py) handle.
"""

from __future__ import annotations

import json

import torch

from model.architectures import TransformerConfig
from model.errors import CheckpointError
from model.formats.weights import WeightsError, read_safetensors, read_torch_bin


def _layer_pairs(ours: str, hf: str, decoder: bool) -> list[tuple[str, str]]:
    """(our name, transformers' name) for every tensor of one layer."""
    pairs: list[tuple[str, str]] = []

    def affine(o: str, h: str):  # Linear and LayerNorm both hold weight + bias
        pairs.extend([(f"{o}.weight", f"{h}.weight"), (f"{o}.bias", f"{h}.bias")])

    def attention(o: str, h: str):
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            affine(f"{o}.{proj}", f"{h}.{proj}")

    attention(f"{ours}.self_attn", f"{hf}.self_attn")
    affine(f"{ours}.self_norm", f"{hf}.self_attn_layer_norm")
    if decoder:
        attention(f"{ours}.cross_attn", f"{hf}.encoder_attn")
        affine(f"{ours}.cross_norm", f"{hf}.encoder_attn_layer_norm")
    affine(f"{ours}.ffn.fc1", f"{hf}.fc1")
    affine(f"{ours}.ffn.fc2", f"{hf}.fc2")
    affine(f"{ours}.ffn_norm", f"{hf}.final_layer_norm")
    return pairs


def layer_names(cfg: TransformerConfig) -> list[tuple[str, str]]:
    pairs = []
    for i in range(cfg.enc_layers):
        pairs += _layer_pairs(f"encoder.{i}", f"model.encoder.layers.{i}", decoder=False)
    for i in range(cfg.dec_layers):
        pairs += _layer_pairs(f"decoder.{i}", f"model.decoder.layers.{i}", decoder=True)
    if cfg.pre_norm:  # the stacks' final layer norms
        for ours, hf in (("enc_norm", "model.encoder.layer_norm"), ("dec_norm", "model.decoder.layer_norm")):
            pairs += [(f"{ours}.weight", f"{hf}.weight"), (f"{ours}.bias", f"{hf}.bias")]
    return pairs


def read_hf_weights(fs, root: str, uri: str) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of a Hugging Face directory and the file(s) they came from.

    `model.safetensors`, sharded safetensors (`model.safetensors.index.json`), or `pytorch_model.bin`
    through torch's weights-only unpickler: a pickle that would build anything but tensors is refused.
    """
    def cat(name):
        return fs.cat_file(f"{root}/{name}")

    try:
        if fs.exists(f"{root}/model.safetensors"):
            return read_safetensors(cat("model.safetensors"), f"{uri}/model.safetensors"), "model.safetensors"
        if fs.exists(f"{root}/model.safetensors.index.json"):
            shards = sorted(set(json.loads(cat("model.safetensors.index.json"))["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for name in shards:
                state.update(read_safetensors(cat(name), f"{uri}/{name}"))
            return state, "model.safetensors.index.json"
        if fs.exists(f"{root}/pytorch_model.bin"):
            return read_torch_bin(cat("pytorch_model.bin"), f"{uri}/pytorch_model.bin"), "pytorch_model.bin"
    except WeightsError as e:
        raise CheckpointError(str(e)) from None
    raise CheckpointError(f"{uri}: no model.safetensors or pytorch_model.bin")
