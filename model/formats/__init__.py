"""Checkpoint formats: our native checkpoint directories, Hugging Face Marian and M2M100/NLLB directories,
and the registry that tells them apart and loads a model or its tokenizer from any of them."""

from importlib import import_module

# name -> the module that defines it, imported on first use: the CPU stages read tokenizers and
# config.json through here and must not load torch.
_HOMES = {
    "Checkpoint": "model.formats.native",
    "build_model": "model.formats.native",
    "load_checkpoint": "model.formats.native",
    "save_checkpoint": "model.formats.native",
    "read_config": "model.formats.native_files",
    "load_tokenizer_only": "model.formats.native_files",
    "FORMAT_READERS": "model.formats.registry",
    "ModelInfo": "model.formats.registry",
    "load_model": "model.formats.registry",
    "load_tokenizer": "model.formats.registry",
    "model_info": "model.formats.registry",
    "load_marian": "model.formats.hf.marian",
    "export_marian": "model.formats.hf.marian_export",
    "marian_order": "model.formats.hf.marian_export",
    "generation_defaults": "model.formats.hf.marian_export",
    "load_m2m100": "model.formats.hf.m2m100",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
