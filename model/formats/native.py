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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import torch
from safetensors.torch import save as save_safetensors
from torch.overrides import TorchFunctionMode

from model.architectures import RNNConfig, RNNSeq2Seq, Transformer, TransformerConfig
from model.errors import CheckpointError
from model.formats.native_files import (
    CARD,
    CONFIG,
    FORMAT,
    VERSION,
    WEIGHTS,
    load_native_tokenizer,
    read_config,
    read_verified,
    sha256,
)
from model.formats.weights import WeightsError, read_safetensors
from model.storage import resolve
from model.tokenizers import Tokenizer

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
    there with the shape the config implies (CheckpointError naming `where` otherwise).

    The model is built on the meta device (no memory, no random initialisation) and each tensor of
    `state` goes straight to `device`, floating ones in `dtype` (float32 when None): building it on the
    CPU in float32 first, then copying the weights in and the whole model over, held ~3x the model in
    host memory per actor. A tensor of `state` already on `device` in that dtype becomes the parameter
    as it is (no copy: the model shares it with the caller's `state`).
    """
    try:
        with torch.device("meta"), _SkipRandomFills():
            model = build_model(arch, model_config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: invalid model config ({e})") from None
    expected = dict(model.named_parameters())
    expected.update(dict(model.named_buffers()))
    if set(state) != set(expected):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise CheckpointError(f"{where} does not fit the config (missing {missing[:5]}, unexpected {extra[:5]})")
    for k, v in state.items():
        want = tuple(expected[k].shape)
        if tuple(v.shape) != want:
            raise CheckpointError(f"{where}: tensor {k} has shape {tuple(v.shape)}, the config expects {want}")
    tied_parameters = _aliases(model.named_parameters(remove_duplicate=False))
    tied_buffers = _aliases(model.named_buffers(remove_duplicate=False))
    model.load_state_dict(_placed(state, expected, device, dtype), strict=False, assign=True)
    _retie(model, tied_parameters, model.get_parameter)
    _retie(model, tied_buffers, model.get_buffer)
    for name, t in _tensors(model):
        if t.is_meta:
            raise CheckpointError(f"{where}: {name} was not loaded (still on the meta device)")
    # Moves nothing (every tensor is in place); it re-runs what modules do when moved: an RNN packs its
    # weights into one cuDNN buffer, as it did when the whole model was moved here.
    model.to(device=device, dtype=dtype)
    return model.eval()


class _SkipRandomFills(TorchFunctionMode):
    """Random initialisation of meta tensors skipped: they hold no values to fill, and torch fills them
    with normal_ through a Python reference that imports torch._dynamo first (~2 s and ~70 MB in every
    actor, seen with torch 2.13). Random fills only: anything else a constructor does still runs."""

    FILLS = frozenset({torch.Tensor.normal_, torch.Tensor.uniform_, torch.nn.init.normal_, torch.nn.init.uniform_,
                       torch.nn.init.trunc_normal_, torch.nn.init.kaiming_normal_, torch.nn.init.kaiming_uniform_})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.FILLS:
            tensor = args[0] if args else kwargs["tensor"]  # nn.init passes it by keyword
            if tensor.is_meta:
                return tensor
        return func(*args, **kwargs)


# Stored dtypes the built (float32) tensors hold exactly, so that converting straight to the target dtype
# rounds as copying into the float32 model and then converting it did (the one rounding is the last).
# Others (float64, integers) still pass through the built dtype, where that copy rounded them.
_WIDENS_EXACTLY = {torch.float32: (torch.float16, torch.bfloat16)}


def _placed(state: dict[str, torch.Tensor], built: dict[str, torch.Tensor], device: str | torch.device,
            dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """`state` on `device`, each tensor contiguous, in `dtype` where the model's tensor is floating (in
    its own dtype otherwise), and none sharing memory with another (two untied weights that the source
    stored as one tensor must not become one after loading)."""
    placed, storages = {}, set()
    for k, v in state.items():
        like = built[k]
        if v.dtype != like.dtype and v.dtype not in _WIDENS_EXACTLY.get(like.dtype, ()):
            v = v.to(like.dtype)
        t = v.to(device=device, dtype=dtype if dtype is not None and like.is_floating_point() else like.dtype)
        t = t.contiguous()
        if t.untyped_storage().data_ptr() in storages:
            t = t.clone()
        storages.add(t.untyped_storage().data_ptr())
        placed[k] = t
    return placed


def _aliases(named: Iterator[tuple[str, torch.Tensor]]) -> dict[str, list[str]]:
    """Tied tensors: the name a state holds each under (the first, as named_parameters() keeps it) ->
    its other names; `named` lists every name (remove_duplicate=False)."""
    by_object: dict[int, list[str]] = {}
    for name, t in named:
        by_object.setdefault(id(t), []).append(name)
    return {names[0]: names[1:] for names in by_object.values() if len(names) > 1}


def _retie(model: torch.nn.Module, aliases: dict[str, list[str]], get: Callable[[str], torch.Tensor]) -> None:
    """Point every alias at the tensor its canonical name received: load_state_dict(assign=True) replaces
    only the names in the state, and would leave e.g. the output layer on its meta weight."""
    for canonical, others in aliases.items():
        tensor = get(canonical)
        for name in others:
            owner, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(owner), leaf, tensor)


def _tensors(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter and buffer under each of its names, and tensors that modules hold as plain
    attributes (built in __init__, so under the meta device too)."""
    yield from model.named_parameters(remove_duplicate=False)
    yield from model.named_buffers(remove_duplicate=False)
    for prefix, module in model.named_modules(remove_duplicate=False):
        for attr, value in vars(module).items():
            if isinstance(value, torch.Tensor):
                yield f"{prefix}.{attr}" if prefix else attr, value


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
