"""Keys of reusable translations: a fingerprint of the model and settings, and each segment's ids under it."""

from __future__ import annotations

import hashlib
import json
from array import array

import pyarrow as pa

from pipeline.columns import MEMORY

MEMORY_COLUMN = MEMORY

REUSE_DECODED, REUSE_MEMORY, REUSE_DUPLICATE = "decoded", "memory", "duplicate"
# The MEMORY_COLUMN the model actor adds (pipeline/stages/translate.py), part files keep and a shard's commit
# writes to the memory from (pipeline/output/commit.py).
MEMORY_TYPE = pa.struct([
    ("key", pa.string()),  # segment_keys; null for rows with nothing to decode (empty, invalid, no language)
    ("reuse", pa.string()),  # decoded here, taken from the memory, or from an identical segment of this run
    ("hyp_ids", pa.list_(pa.list_(pa.int32()))),  # the model actor's output for the row, n-best
    ("score", pa.float64()),
    ("nbest_scores", pa.list_(pa.float64())),
    ("length_limited", pa.bool_()),
])

# Settings that change what is written around a translation, or how rows are cut into segments, but not the
# translation of a segment the model sees: a sentence run and a document run share translations, and so do
# runs with and without --write-scores. The row's languages are in its ids (multilingual models' language
# tokens) and, for bilingual models, do not change the translation at all.
# Language identification decides which rows are decoded, not what a decoded segment becomes; flags are read
# off finished translations.
NOT_IN_FINGERPRINT = ("unit", "format", "write_scores", "write_segments", "source_lang", "target_lang",
                      "source_lang_column", "target_lang_column", "lang_confidence", "quality_flags")


def memory_fingerprint(model_files: list, settings) -> str:
    """sha256 of every file of every model that decodes (ensemble members in order) and every
    TranslationSettings value that changes a segment's translation. `settings` must be resolved: the
    precision a row decodes in (not "auto") changes its translation."""
    from model.config_fields import leaf_values

    values = {k: v for k, v in leaf_values(settings).items() if k not in NOT_IN_FINGERPRINT}
    if values.get("precision") == "auto":
        raise ValueError("memory_fingerprint needs resolved settings (precision is 'auto')")
    text = json.dumps({"model_files": model_files, "settings": values}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def segment_keys(fingerprint: str, pieces: list, prefixes: list | None) -> list[str | None]:
    """Per row: 32 hex digits of a hash of the fingerprint, its source pieces (ids, each ending in EOS) and its
    forced target prefix; None for a row with no pieces (nothing to decode)."""
    seed = hashlib.blake2b(fingerprint.encode(), digest_size=16)
    keys: list[str | None] = []
    for r, row in enumerate(pieces):
        if not row:
            keys.append(None)
            continue
        h = seed.copy()
        for piece in row:
            h.update(array("i", piece).tobytes())
            h.update(b"|")  # pieces [a, b] and [a b] differ
        h.update(b"#")
        h.update(array("i", prefixes[r] if prefixes else ()).tobytes())
        keys.append(h.hexdigest())
    return keys
