"""Batch-row selection over decoder state and encoder memory.

Search needs one operation on whatever a model keeps between steps: pick rows
(beams that survive, sentences that are still decoding). States here are
dataclasses or tuples of tensors whose first dimension is the batch row, so one
function serves every model and the ensemble.
"""

from __future__ import annotations

import dataclasses

import torch


def select_rows(obj, index: torch.Tensor):
    """Return `obj` with every tensor's first dimension indexed by `index`.

    Non-tensor leaves (step counters, flags) are shared unchanged. An object with a `select_rows(index)`
    method of its own (model/architectures/cross_memory.py's RowMemory, which only narrows an index) is asked to do it.
    """
    if isinstance(obj, torch.Tensor):
        return obj.index_select(0, index)
    own = getattr(obj, "select_rows", None)
    if callable(own):
        return own(index)
    if obj is None or isinstance(obj, (int, float, bool, str)):
        return obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(select_rows(x, index) for x in obj)
    if dataclasses.is_dataclass(obj):
        changes = {f.name: select_rows(getattr(obj, f.name), index) for f in dataclasses.fields(obj)}
        return dataclasses.replace(obj, **changes)
    raise TypeError(f"cannot select rows of {type(obj).__name__}")
