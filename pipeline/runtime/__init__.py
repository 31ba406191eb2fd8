"""The model actors' runtime: CPU set-up (BLAS, malloc, threads, int8), the GPU memory budget, the
CTranslate2 engine, and process memory readings.
"""

from importlib import import_module

# name -> the module that defines it, imported on first use: most of these load torch.
_HOMES = {
    "numpy_blas": "pipeline.runtime.blas",
    "resolve_cpu_blas": "pipeline.runtime.blas",
    "for_cpu_decoding": "pipeline.runtime.cpu_decoding",
    "setup_cpu_process": "pipeline.runtime.cpu_decoding",
    "CTranslate2Engine": "pipeline.runtime.ct2_engine",
    "check_supported": "pipeline.runtime.ct2_engine",
    "missing_packages": "pipeline.runtime.ct2_engine",
    "measure_budget": "pipeline.runtime.gpu_budget",
    "peak_rss_mb": "pipeline.runtime.process_memory",
    "private_mb": "pipeline.runtime.process_memory",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
