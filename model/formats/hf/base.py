"""The load skeleton every Hugging Face family shares, as CTranslate2's converters share theirs: read
config.json, the tokenizer and the weights, build our config and rename the tensors (the family's own two
steps), assemble the model, read generation_config.json. A family module supplies only what differs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

import torch

from model.architectures import TransformerConfig
from model.errors import CheckpointError
from model.formats.hf.layout import read_hf_weights
from model.formats.native import assemble
from model.storage import read_json, resolve

# transformers' activation names -> ours (model/architectures/transformer.py ACTIVATIONS), and back.
ACTIVATION_FROM_HF = {"relu": "relu", "swish": "swish", "silu": "silu", "gelu": "gelu", "gelu_new": "gelu_tanh",
                      "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh"}
ACTIVATION_TO_HF = {"relu": "relu", "swish": "swish", "silu": "silu", "gelu": "gelu", "gelu_tanh": "gelu_new"}


def need(hf: dict, where: str, key: str):
    """config.json's `key`; CheckpointError naming it where the file lacks it."""
    if key not in hf:
        raise CheckpointError(f"{where}: config.json lacks {key!r}")
    return hf[key]


def take(hf_state: dict[str, torch.Tensor], where: str, *names: str) -> torch.Tensor:
    """The first of `names` (aliases of one tensor) the weights hold; CheckpointError naming the first."""
    for n in names:
        if n in hf_state:
            return hf_state[n]
    raise CheckpointError(f"{where}: weights lack {names[0]}")


def load_hf_directory(uri: str, device, dtype, storage_options: dict | None,
                      load_tokenizer: Callable, config_of: Callable[..., TransformerConfig], state_of: Callable):
    """(model, tokenizer, config.json, generation_config.json) of a Hugging Face directory.

    `load_tokenizer(fs, root, uri, hf)`: the family's tokenizer; `config_of(hf, hf_state, tokenizer, uri)`: our
    TransformerConfig; `state_of(hf_state, cfg, where)`: transformers' tensors renamed to ours.
    """
    fs, root = resolve(uri, storage_options)
    hf = read_json(fs, root, "config.json", uri)
    tokenizer = load_tokenizer(fs, root, uri, hf)
    hf_state, source = read_hf_weights(fs, root, uri)
    cfg = config_of(hf, hf_state, tokenizer, uri)
    where = f"{uri}/{source}"
    model = assemble("transformer", asdict(cfg), state_of(hf_state, cfg, where), where, device, dtype)
    generation = read_json(fs, root, "generation_config.json", uri, required=False)
    return model, tokenizer, hf, generation
