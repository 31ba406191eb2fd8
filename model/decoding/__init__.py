"""Decoding: the decode settings, beam and greedy search, ensembles, and batched translation of id lists
under a token budget (shared by the translation actors and by validation during training)."""

from importlib import import_module

# name -> the module that defines it, imported on first use: DecodeConfig is read by the driver,
# which must not load torch.
_HOMES = {
    "DecodeConfig": "model.decoding.config",
    "LENGTH_PENALTIES": "model.decoding.config",
    "Ensemble": "model.decoding.beam",
    "Hypothesis": "model.decoding.beam",
    "search": "model.decoding.beam",
    "max_lengths": "model.decoding.beam",
    "pad_batch": "model.decoding.batching",
    "budget_batches": "model.decoding.batching",
    "least_padding_batches": "model.decoding.batching",
    "EngineOutOfMemory": "model.decoding.batched",
    "translate_ids": "model.decoding.batched",
    "prepare_for_decoding": "model.decoding.batched",
    "decode_cost": "model.decoding.batched",
    "decode_streams": "model.decoding.batched",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
