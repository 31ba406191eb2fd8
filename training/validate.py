"""Validation during training: teacher-forced loss and sacreBLEU of decoded output."""

from __future__ import annotations

import math

import torch
from sacrebleu.metrics import BLEU

from model.architectures import label_smoothed_loss
from model.decoding import DecodeConfig, budget_batches, translate_ids
from model.tokenizers import PAD_ID, Tokenizer
from training.data import make_batch


@torch.no_grad()
def validation_loss(model, pairs: list[tuple[list[int], list[int]]], max_tokens: int, device) -> dict:
    """Per-token NLL and perplexity over (src_ids, tgt_ids) pairs, ids without EOS/BOS."""
    model.eval()
    nll_sum, n_tokens = 0.0, 0
    lengths = [max(len(s), len(t)) + 1 for s, t in pairs]
    for idx in budget_batches(lengths, max_tokens):
        batch = make_batch([pairs[i] for i in idx]).to(device)
        _, nll, n = label_smoothed_loss(model(batch.src, batch.tgt_in), batch.tgt_out, PAD_ID, 0.0)
        nll_sum += float(nll)
        n_tokens += n
    model.train()
    nll = nll_sum / max(n_tokens, 1)
    return {"val_nll": nll, "val_ppl": math.exp(min(nll, 50.0))}


def validation_bleu(model, tokenizer: Tokenizer, sources: list[str], references: list[str],
                    decode: DecodeConfig, max_tokens: int, device) -> dict:
    """sacreBLEU (default 13a, cased) of detokenized output against raw references."""
    model.eval()
    hyps, _ = translate_ids(model, tokenizer.encode_source(sources), decode, max_tokens, device)
    model.train()
    outputs = tokenizer.decode_target([h[0].tokens for h in hyps])
    metric = BLEU()
    score = metric.corpus_score(outputs, [references])
    return {"val_bleu": score.score, "val_bleu_signature": str(metric.get_signature()), "val_sample": outputs[:3]}
