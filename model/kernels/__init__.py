"""CPU kernels: the C sources (*.c, compiled on first use), their ctypes bindings (`cpu_kernels`), int8
quantization, and what this CPU can do."""

from importlib import import_module

# name -> the module that defines it, imported on first use: the bindings import torch, cpu_features
# does not.
_HOMES = {
    "cpu_flags": "model.kernels.cpu_features",
    "cpu_vendor": "model.kernels.cpu_features",
    "cpuinfo": "model.kernels.cpu_features",
    "quantize_int8": "model.kernels.quantize",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
