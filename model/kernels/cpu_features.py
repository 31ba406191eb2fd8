"""What this CPU is and can do, from /proc/cpuinfo (Linux; empty elsewhere), read in one place for the
kernels' build flags (cpu_kernels.py), the CPU actors' BLAS choice (pipeline/runtime/blas.py) and the
benchmarks' machine record (bench/machine.py). No torch here."""

from __future__ import annotations


def cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ("flags", "vendor_id", "model name", ...); {} where
    there is none."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_flags() -> set[str]:
    """This CPU's feature flags (avx2, fma, avx512f, ...); empty where unknown."""
    return set(cpuinfo().get("flags", "").split())


def cpu_vendor() -> str:
    """x86 vendor string (GenuineIntel, AuthenticAMD, ...); "" elsewhere."""
    return cpuinfo().get("vendor_id", "")
