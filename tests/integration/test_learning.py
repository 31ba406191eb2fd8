"""Both architectures learn: a tiny Transformer and a tiny LSTM with Luong attention, trained here on
reversing sequences, decode them back with beam search. Training runs of ten seconds or more each, so they
run with the integration tests; tests/unit/test_models.py checks the parts (caching, batching, search)."""

import pytest
import torch

from model.decoding import pad_batch
from model.decoding.beam import DecodeConfig, search
from model.tokenizers import EOS_ID, PAD_ID
from tests.helpers import random_sources, tiny_rnn, tiny_transformer, train_reversal


# Settings that reach >= 0.98 exact match from each of seeds 0-3 (the Transformer) and >= 0.96 (the LSTM), at a
# third to a half of the updates first used (500 and 300 updates of 64); an untrained or mis-trained model scores ~0.
@pytest.mark.parametrize(
    "name, factory, steps, lr, batch",
    [
        ("transformer", lambda: tiny_transformer(12), 250, 2e-3, 64),
        (
            "lstm-luong",
            lambda: tiny_rnn(12, cell="lstm", attention="luong_general", hidden_dim=64, emb_dim=32, num_layers=1),
            150,
            5e-3,
            128,
        ),
    ],
)
def test_tiny_model_learns_to_reverse(name, factory, steps, lr, batch):
    torch.manual_seed(0)
    model = factory()
    train_reversal(model, 12, steps=steps, lr=lr, batch=batch)
    seqs = random_sources(100, 12, 2, 6, seed=999)
    hyps = search(model, pad_batch(seqs, PAD_ID, suffix=EOS_ID), DecodeConfig(beam_size=4))
    exact = sum(h[0].tokens == s[::-1] for h, s in zip(hyps, seqs, strict=True)) / len(seqs)
    assert exact >= 0.95, f"{name}: exact match {exact:.2f}"
