"""Reading weight files without ever running code from them.

Two formats arrive here: safetensors (our checkpoints, and most Hugging Face
directories) and `pytorch_model.bin` (older Hugging Face directories, a
`torch.save` zip of pickles). Safetensors is a JSON header plus raw bytes, so
parsing it cannot execute anything; the parser alone decides whether a file
is safetensors. A `.bin` file is read with torch's weights-only unpickler,
which only rebuilds tensors and plain containers and refuses any other object
before constructing it.
"""

from __future__ import annotations

import io

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors


class WeightsError(ValueError):
    """A weight file that is not what it claims to be; the message names the file."""


def _looks_like(data: bytes) -> str:
    """A guess at what a non-safetensors file is, for the error message only (never to decide)."""
    if data[:2] == b"PK":
        return "a zip archive (torch.save?)"
    if data[:1] == b"\x80":
        return "possibly a pickle"
    return "unrecognised content"


def read_safetensors(data: bytes, where: str) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file's bytes; WeightsError naming `where` if it is anything else.

    There is no sniffing of the first bytes: a safetensors file starts with its header length
    as a little-endian u64, which can begin with any byte (0x80 included).
    """
    try:
        return load_safetensors(data)
    except (SafetensorError, ValueError) as e:
        raise WeightsError(f"{where} is not a valid safetensors file ({_looks_like(data)}: {e}); "
                           "refusing to load it") from None


def read_torch_bin(data: bytes, where: str) -> dict[str, torch.Tensor]:
    """Tensors of a `pytorch_model.bin` with the weights-only unpickler; anything else is refused.

    `weights_only=True` is torch's allow-list unpickler: tensors, storages and plain Python
    containers only. A pickle that would construct any other object (and so could run code)
    fails before that object is built.
    """
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True, mmap=False)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError or others depending on the content
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{where} is not a plain tensor file; refusing to load it ({first})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise WeightsError(f"{where} does not hold a flat name -> tensor mapping; refusing to load it")
    return state
