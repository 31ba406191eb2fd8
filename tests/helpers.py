"""Tiny models and toy tasks shared by the tests."""

from __future__ import annotations

import random

import torch

from model.architectures import RNNConfig, RNNSeq2Seq, Transformer, TransformerConfig, label_smoothed_loss
from model.decoding import pad_batch
from model.tokenizers import BOS_ID, EOS_ID, PAD_ID

FIRST_SYMBOL = 4  # ids below are pad/unk/bos/eos


def tiny_transformer(vocab: int = 16, **overrides) -> Transformer:
    cfg = dict(
        src_vocab_size=vocab,
        tgt_vocab_size=vocab,
        d_model=32,
        n_heads=4,
        enc_layers=2,
        dec_layers=2,
        ff_dim=64,
        dropout=0.0,
    )
    cfg.update(overrides)
    return Transformer(TransformerConfig(**cfg))


def tiny_rnn(vocab: int = 16, **overrides) -> RNNSeq2Seq:
    cfg = dict(
        src_vocab_size=vocab,
        tgt_vocab_size=vocab,
        emb_dim=16,
        hidden_dim=32,
        num_layers=2,
        dropout=0.0,
    )
    cfg.update(overrides)
    return RNNSeq2Seq(RNNConfig(**cfg))


def random_sources(n: int, vocab: int, min_len: int, max_len: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(FIRST_SYMBOL, vocab) for _ in range(rng.randint(min_len, max_len))] for _ in range(n)]


def train_reversal(model, vocab: int, steps: int, lr: float, seed: int = 0, batch: int = 64):
    """Teach `model` to reverse short sequences; returns the last loss."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        seqs = random_sources(batch, vocab, 2, 6, seed=seed * 100_000 + step)
        src = pad_batch(seqs, PAD_ID, suffix=EOS_ID)
        tgt_in = pad_batch([s[::-1] for s in seqs], PAD_ID, prefix=BOS_ID)
        tgt_out = pad_batch([s[::-1] for s in seqs], PAD_ID, suffix=EOS_ID)
        loss, _, n = label_smoothed_loss(model(src, tgt_in), tgt_out, PAD_ID, 0.0)
        opt.zero_grad()
        (loss / n).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    model.eval()
    return float(loss.detach() / n)
