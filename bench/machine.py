"""What a benchmark ran on: CPU model and vector extensions matter as much as the core count
(the same 2-core VM type has come with and without AVX-512, at ~2x the decoding speed)."""

from __future__ import annotations

import os
import platform


def cpu_info() -> dict:
    from model.kernels import cpu_flags, cpuinfo

    model, flags = platform.processor() or platform.machine(), cpu_flags()
    if model in ("", "x86_64", platform.machine()):
        model = cpuinfo().get("model name", model)
    isa = [name for name in ("avx512f", "avx512_bf16", "amx_tile") if name in flags]
    return {"cpus": os.cpu_count(), "cpu_model": model, "isa": isa or [f for f in ("avx2",) if f in flags]}
