"""CTranslate2 as the model actors' decoder (`--engine ctranslate2`, opt-in).

CTranslate2 is the fastest open inference engine for Transformer translation (bench/engines.py
measures it beside ours on the same weights). This engine lets a user have its speed inside this
pipeline: the same shards, token-budget batches, resume, row statuses and reports; only the beam
search of each batch runs in CTranslate2.

Each actor converts its model once, at start: our Transformer is written as a Hugging Face Marian
directory (model/formats/hf/marian_export.py, the exporter the interop tests check against stock transformers and
CTranslate2), then through CTranslate2's own converter, into a temporary directory. Ids cross as
tokens of the exported vocabulary, so both sides read the same pieces.

What it decodes differently from ours, by design of CTranslate2 (the benchmark measures the effect:
identical output on test_2016_flickr at beam 4):
- a sentence that reaches its length limit stops there; ours ends it with EOS at the model's own
  EOS probability. Limits are per sentence (max_len_a * source + max_len_b) in both engines: a batch
  is decoded up to its longest sentence's limit, and the rare sentence that overruns its own limit
  is decoded again alone with it.
- it supports the "average" (score / length**alpha) and "none" length penalties, not "gnmt".
- --no-repeat-ngram-size goes to its own no_repeat_ngram_size.
Not supported, with an error at start: ensembles, recurrent models, pre-norm models (M2M100 / NLLB,
whose export this project does not write) and forced target prefixes.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import replace

import torch

from model.decoding import DecodeConfig, EngineOutOfMemory, Hypothesis, max_lengths

# Our --precision -> CTranslate2 compute_type.
COMPUTE_TYPES = {"fp32": "float32", "int8": "int8", "bf16": "bfloat16", "fp16": "float16"}
EXPORT_POSITIONS = 1024  # position table of the export, for models of ours that have no limit
LENGTH_PENALTY_EXPONENT = {"average": lambda alpha: alpha, "none": lambda alpha: 0.0}


def missing_packages() -> list[str]:
    """The packages this engine needs that are not installed (the converter reads the export with transformers)."""
    import importlib.util

    return [name for name in ("ctranslate2", "transformers") if importlib.util.find_spec(name) is None]


def check_supported(model, decode: DecodeConfig, ensemble: bool) -> None:
    """ValueError naming what --engine ctranslate2 cannot decode."""
    from model.architectures import Transformer

    if ensemble:
        raise ValueError("--engine ctranslate2 decodes single models; drop --ensemble or use --engine ours")
    if not isinstance(model, Transformer):
        raise ValueError(f"--engine ctranslate2 runs Transformer models; this is a {model.arch!r} model")
    if model.cfg.pre_norm:
        raise ValueError("--engine ctranslate2 runs Marian-style (post-norm) Transformers; this pre-norm model "
                         "(M2M100 / NLLB) needs --engine ours")
    if decode.length_penalty not in LENGTH_PENALTY_EXPONENT:
        raise ValueError(f"--engine ctranslate2 supports --length-penalty {sorted(LENGTH_PENALTY_EXPONENT)}, "
                         f"not {decode.length_penalty!r}")


class CTranslate2Engine:
    """Decodes padded id batches with CTranslate2; a drop-in for model.decoding.beam.search in translate_ids."""

    def __init__(self, model, tokenizer, decode: DecodeConfig, precision: str, device: str, threads: int):
        import ctranslate2
        from ctranslate2.converters import TransformersConverter

        from model.formats import export_marian, marian_order

        check_supported(model, decode, ensemble=False)
        self.cfg = model.cfg  # translate_ids pads with cfg.source_pad_id
        self.positions = model.cfg.max_positions or EXPORT_POSITIONS  # what the converted model can hold
        self.decode = decode
        self._workdir = tempfile.TemporaryDirectory(prefix="ct2-engine-")
        hf, ct2 = (os.path.join(self._workdir.name, name) for name in ("hf", "ct2"))
        export_marian(model, tokenizer, hf, max_positions=EXPORT_POSITIONS)
        TransformersConverter(hf).convert(ct2, force=True)
        self.translator = ctranslate2.Translator(ct2, device=device, compute_type=COMPUTE_TYPES[precision],
                                                 intra_threads=max(threads, 0), inter_threads=1)
        source_pieces, target_pieces = _vocabularies(ct2)
        # Our id -> the exported piece (source side); the exported piece -> our id (target side).
        src_order, tgt_order = marian_order(tokenizer, "source"), marian_order(tokenizer, "target")
        # The export drops our pad id; CTranslate2's Marian converter drops the last entry, the decoder's
        # start symbol "<pad>". Neither occurs in a source or a hypothesis.
        self.piece_of = [""] * model.cfg.src_vocab_size
        for marian_id, ours in enumerate(src_order[:len(source_pieces)]):
            self.piece_of[ours] = source_pieces[marian_id]
        self.id_of = {target_pieces[marian_id]: ours for marian_id, ours in enumerate(tgt_order[:len(target_pieces)])}

    def __call__(self, src: torch.Tensor, cfg: DecodeConfig, prefix: torch.Tensor | None = None
                 ) -> list[list[Hypothesis]]:
        """The same contract as model.decoding.beam.search: src (B, S) right-padded ids ending in EOS."""
        if prefix is not None:
            raise ValueError("--engine ctranslate2 does not force target prefixes (multilingual models)")
        pad = self.cfg.source_pad_id
        limits = max_lengths(src, pad, cfg, self.positions).tolist()  # (B,) tokens, EOS excluded
        rows = [[self.piece_of[i] for i in row if i != pad] for row in src.tolist()]
        results = self._translate(rows, max(limits), cfg)
        for b, (hyps, limit) in enumerate(zip(results, limits, strict=True)):
            if limit < max(limits) and any(len(h.tokens) > limit for h in hyps):
                results[b] = self._translate([rows[b]], limit, cfg)[0]  # its own limit (rare)
        # A hypothesis of `limit` tokens stopped there without EOS: cut at the limit.
        return [[replace(h, length_limited=len(h.tokens) >= limit) for h in hyps]
                for hyps, limit in zip(results, limits, strict=True)]

    def _translate(self, rows: list[list[str]], limit: int, cfg: DecodeConfig) -> list[list[Hypothesis]]:
        alpha = LENGTH_PENALTY_EXPONENT[cfg.length_penalty](cfg.alpha)
        try:
            out = self.translator.translate_batch(
                rows, beam_size=cfg.beam_size, num_hypotheses=cfg.nbest, length_penalty=alpha, return_scores=True,
                no_repeat_ngram_size=cfg.no_repeat_ngram_size,
                # At most `limit` tokens, as ours; at the limit CTranslate2 stops without EOS.
                max_decoding_length=limit, min_decoding_length=cfg.min_len,
                max_batch_size=0)  # the batch as given: translate_ids cut it under the token budget
        except RuntimeError as e:
            if is_out_of_memory(e):  # translate_ids splits the batch and retries the halves
                raise EngineOutOfMemory(str(e)) from e
            raise
        hyps = []
        for result in out:
            hyps.append([Hypothesis(tokens=[self.id_of[p] for p in pieces], score=score,
                                    # CTranslate2 reports score = logprob / length**alpha, EOS counted.
                                    logprob=score * (len(pieces) + 1) ** alpha)
                         for pieces, score in zip(result.hypotheses, result.scores, strict=True)])
        return hyps


def is_out_of_memory(error: RuntimeError) -> bool:
    """Whether CTranslate2 ran out of device memory: it raises RuntimeError("CUDA failed with error out of
    memory") from its CUDA allocator, and std::bad_alloc (a MemoryError in Python) on the host."""
    return "out of memory" in str(error).lower()


def _vocabularies(ct2_dir: str) -> tuple[list[str], list[str]]:
    """(source pieces, target pieces) by CTranslate2 id, which is the exported Marian id."""
    def read(name):
        with open(os.path.join(ct2_dir, name), encoding="utf-8") as f:
            return json.load(f)

    if os.path.exists(os.path.join(ct2_dir, "shared_vocabulary.json")):
        shared = read("shared_vocabulary.json")
        return shared, shared
    return read("source_vocabulary.json"), read("target_vocabulary.json")
