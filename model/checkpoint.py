"""Self-contained model directories at any fsspec URI.

A checkpoint is a directory (local, file://, s3://, gs://, memory://, ...):

    config.json        architecture, model config, tokenizer files, sha256 of every file
    model.safetensors  weights (no pickle: loading a checkpoint never runs code)
    spm.model          joint SentencePiece model, or source.spm + target.spm
    README.md          model card

config.json is written last, so a directory without it is an unfinished
save. Every other file is checked against its recorded sha256 on load: a
tampered or truncated file is refused with an error naming it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import torch
from safetensors.torch import save as save_safetensors

from model.checkpoint_files import (  # noqa: F401  (re-exported: the checkpoint format's names)
    CARD,
    CONFIG,
    FORMAT,
    VERSION,
    WEIGHTS,
    CheckpointError,
    load_native_tokenizer,
    load_tokenizer_only,
    read_config,
    read_verified,
    sha256,
)
from model.rnn import RNNConfig, RNNSeq2Seq
from model.storage import resolve
from model.tokenizer import Tokenizer
from model.transformer import Transformer, TransformerConfig
from model.weights import WeightsError, read_safetensors

# Two architectures, named explicitly (no registry).
ARCHITECTURES = {
    "transformer": (Transformer, TransformerConfig),
    "rnn": (RNNSeq2Seq, RNNConfig),
}


@dataclass
class Checkpoint:
    model: torch.nn.Module
    tokenizer: Tokenizer
    config: dict  # the parsed config.json
    metadata: dict = field(default_factory=dict)


def build_model(arch: str, model_config: dict) -> torch.nn.Module:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}")
    cls, cfg_cls = ARCHITECTURES[arch]
    return cls(cfg_cls(**model_config))


def unique_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers with tied weights stored once (named_parameters skips aliases)."""
    tensors = dict(model.named_parameters())
    tensors.update(dict(model.named_buffers()))
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def save_checkpoint(
    uri: str,
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    *,
    card: str | None = None,
    metadata: dict | None = None,
    weights_dtype: torch.dtype = torch.float32,
    storage_options: dict | None = None,
) -> None:
    """Write a self-contained checkpoint directory at `uri` (created if missing)."""
    fs, root = resolve(uri, storage_options)
    fs.makedirs(root, exist_ok=True)
    state = {k: (v.to(weights_dtype) if v.is_floating_point() else v) for k, v in unique_state(model).items()}
    tokenizer_files, layout = tokenizer.files()
    files = {WEIGHTS: save_safetensors(state), **tokenizer_files}
    files[CARD] = (card or default_card(model, metadata or {})).encode()
    for name, data in files.items():
        fs.pipe_file(f"{root}/{name}", data)
    config = {
        "format": FORMAT,
        "version": VERSION,
        "arch": model.arch,
        "model": asdict(model.cfg),
        "tokenizer": layout,
        "files": {name: sha256(data) for name, data in files.items()},
        "metadata": metadata or {},
    }
    # Last: its presence marks the directory as complete.
    fs.pipe_file(f"{root}/{CONFIG}", json.dumps(config, indent=2, sort_keys=True).encode())


def _load_weights(data: bytes, uri: str) -> dict[str, torch.Tensor]:
    try:
        return read_safetensors(data, f"checkpoint {uri}: {WEIGHTS}")
    except WeightsError as e:
        raise CheckpointError(str(e)) from None


def assemble(arch: str, model_config: dict, state: dict[str, torch.Tensor], where: str,
             device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> torch.nn.Module:
    """Build the model a config describes and load `state` into it, in eval mode; every tensor must be
    there with the shape the config implies (CheckpointError naming `where` otherwise)."""
    try:
        model = build_model(arch, model_config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: invalid model config ({e})") from None
    expected = unique_state(model)
    if set(state) != set(expected):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise CheckpointError(f"{where} does not fit the config (missing {missing[:5]}, unexpected {extra[:5]})")
    for k, v in state.items():
        want = tuple(expected[k].shape)
        if tuple(v.shape) != want:
            raise CheckpointError(f"{where}: tensor {k} has shape {tuple(v.shape)}, the config expects {want}")
    # Stored weights may be fp16 to save space; compute in float32 unless asked otherwise.
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=False)
    model.to(device=device, dtype=dtype)
    return model.eval()


def load_checkpoint(
    uri: str,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    storage_options: dict | None = None,
) -> Checkpoint:
    """Rebuild model and tokenizer from a checkpoint directory; model is in eval mode."""
    config = read_config(uri, storage_options)
    fs, root = resolve(uri, storage_options)
    tokenizer = load_native_tokenizer(fs, root, config, uri)
    state = _load_weights(read_verified(fs, root, WEIGHTS, config, uri), uri)
    model = assemble(config["arch"], config["model"], state, f"checkpoint {uri}: {WEIGHTS}", device, dtype)
    return Checkpoint(model=model, tokenizer=tokenizer, config=config, metadata=config.get("metadata", {}))


def default_card(model: torch.nn.Module, metadata: dict) -> str:
    params = sum(p.numel() for p in model.parameters())
    lines = [
        f"# {metadata.get('name', 'Translation model')}",
        "",
        f"- Architecture: `{model.arch}`, {params:,} parameters",
        f"- Config: `{json.dumps(asdict(model.cfg), sort_keys=True)}`",
    ]
    for key, value in sorted(metadata.items()):
        if key != "name":
            lines.append(f"- {key}: `{json.dumps(value, sort_keys=True)}`")
    return "\n".join(lines) + "\n"
