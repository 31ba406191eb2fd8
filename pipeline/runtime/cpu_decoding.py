"""How a process that decodes on CPU sets itself and its models up: one place for the translation
actors and the engines benchmark, so the benchmark measures what the actors run."""

from __future__ import annotations

from torch import nn


def setup_cpu_process(threads: int) -> None:
    """glibc keeps large freed blocks (pipeline/runtime/malloc.py) and torch runs `threads` threads (0: its default)."""
    import torch

    from pipeline.runtime.malloc import reuse_freed_memory

    reuse_freed_memory()
    if threads:
        torch.set_num_threads(threads)


def for_cpu_decoding(model: nn.Module, precision: str, cpu_blas: str, threads: int) -> nn.Module:
    """`model` ready to decode on CPU at `precision` ("fp32", "bf16" or "int8").

    int8 quantizes every linear layer (model/kernels/quantize.py); fp32 runs its products in the library
    `cpu_blas` resolves to for an actor of `threads` torch threads (pipeline/runtime/blas.py): OpenBLAS's
    vocabulary projection, oneDNN's linear layers, or torch's own.
    Both first apply the family's inference rewrites (model/decoding/batched.py::prepare_for_decoding).
    Returns a new model for int8, the same one otherwise.
    """
    from model.decoding import prepare_for_decoding

    prepare_for_decoding(model)
    if precision == "int8":
        from model.kernels import quantize_int8

        return quantize_int8(model)
    from pipeline.runtime.blas import resolve_cpu_blas, use_cpu_blas

    use_cpu_blas(model, resolve_cpu_blas(cpu_blas, threads))
    return model
