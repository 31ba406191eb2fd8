"""Scheduled sampling: the schedules, the token mixing of each model family, and rate 0 = teacher forcing."""

import math

import pytest
import torch

from model.decoding import pad_batch
from model.tokenizers import BOS_ID, EOS_ID, PAD_ID
from tests.helpers import random_sources, tiny_rnn, tiny_transformer
from training.data import make_batch
from training.loop import batch_loss
from training.scheduled_sampling import ScheduledSampling, TokenMixer

VOCAB = 16
FAMILIES = {
    "transformer": lambda **kw: tiny_transformer(VOCAB, **kw),  # two passes
    "rnn-bahdanau": lambda **kw: tiny_rnn(VOCAB, attention="bahdanau", **kw),  # step by step
    "rnn-luong-feed": lambda **kw: tiny_rnn(VOCAB, attention="luong_general", input_feeding=True, **kw),
    "rnn-luong": lambda **kw: tiny_rnn(VOCAB, attention="luong_dot", cell="gru", **kw),
}


def batch(n=48, seed=5):
    seqs = random_sources(n, VOCAB, 2, 12, seed=seed)
    return make_batch([(s, s[::-1]) for s in seqs])


def test_schedules_follow_bengio_et_al():
    linear = ScheduledSampling("linear", ss_k=1.0, ss_c=1e-3, ss_min_teacher_forcing=0.1)
    assert [linear.teacher_forcing_rate(i) for i in (0, 250, 500, 900, 5000)] == pytest.approx(
        [1.0, 0.75, 0.5, 0.1, 0.1])
    exponential = ScheduledSampling("exponential", ss_k=0.999)
    assert exponential.teacher_forcing_rate(0) == 1.0
    assert exponential.teacher_forcing_rate(693) == pytest.approx(0.5, abs=1e-3)  # 0.999**693
    sigmoid = ScheduledSampling("inverse_sigmoid", ss_k=100.0)
    assert sigmoid.teacher_forcing_rate(0) == pytest.approx(100 / 101)
    assert sigmoid.teacher_forcing_rate(round(100 * math.log(100))) == pytest.approx(0.5, abs=2e-3)
    assert sigmoid.teacher_forcing_rate(10**9) == 0.0  # no overflow far out
    assert ScheduledSampling().teacher_forcing_rate(10**6) == 1.0  # "none"
    for bad in (dict(scheduled_sampling="exponential", ss_k=1.0), dict(scheduled_sampling="inverse_sigmoid", ss_k=0.5),
                dict(scheduled_sampling="linear", ss_k=1.5), dict(ss_min_teacher_forcing=2.0)):
        with pytest.raises(ValueError):
            ScheduledSampling(**bad)


@pytest.mark.parametrize("family", FAMILIES)
def test_rate_zero_trains_bit_identically_to_teacher_forcing(family):
    """A schedule whose rate is 0 (here: the linear one before it starts decaying) gives the same weights,
    with dropout on: the sampler consumes none of the global random stream."""
    schedule = ScheduledSampling("linear", ss_k=1.0, ss_c=0.0)
    weights = []
    for sampling in (None, schedule):
        torch.manual_seed(0)
        model = FAMILIES[family](dropout=0.3).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for update in range(3):
            mix = sampling.mixer(update, seed=1, device="cpu", pad_id=PAD_ID) if sampling else None
            assert mix is None
            loss, _ = batch_loss(model, batch(seed=update), 0.1, mix)
            loss.backward()
            opt.step()
            opt.zero_grad()
        weights.append(model.state_dict())
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), name


@pytest.mark.parametrize("family", FAMILIES)
def test_mixing_nothing_reproduces_teacher_forcing_logits(family):
    """The sampling code path itself (step by step, or two passes) computes the teacher-forced model
    when the mixer never picks the model's token."""
    torch.manual_seed(0)
    model = FAMILIES[family]().eval()
    b = batch()
    with torch.no_grad():
        forced = model(b.src, b.tgt_in)
        mix = TokenMixer(0.0, "sample", torch.Generator().manual_seed(0), PAD_ID)
        mixed = model(b.src, b.tgt_in, mix=mix)
    if family == "rnn-luong":  # teacher forcing runs the RNN over the whole target at once: other kernels
        torch.testing.assert_close(mixed, forced, atol=1e-5, rtol=1e-5)
    else:
        assert torch.equal(mixed, forced)
    assert mix.counts == (0, int(b.tgt_in[:, 1:].ne(PAD_ID).sum()))


@pytest.mark.parametrize("family", FAMILIES)
def test_always_sampling_feeds_the_models_own_predictions(family):
    """Rate 1 with argmax: the recurrent models see their own greedy outputs step by step; the
    Transformer's second pass reads the first pass's argmax. Padding stays padding."""
    torch.manual_seed(0)
    model = FAMILIES[family]().eval()
    b = batch(n=8)
    with torch.no_grad():
        got = model(b.src, b.tgt_in, mix=TokenMixer(1.0, "argmax", torch.Generator().manual_seed(0), PAD_ID))
        pad = b.tgt_in.eq(PAD_ID)
        if family == "transformer":
            first = model(b.src, b.tgt_in)
            inputs = torch.cat([b.tgt_in[:, :1], first[:, :-1].argmax(-1)], dim=1).masked_fill(pad, PAD_ID)
            want = model(b.src, inputs)
        else:
            memory = model.encode(b.src)
            state, prev, steps = model.init_state(memory), b.tgt_in[:, 0], []
            for t in range(b.tgt_in.size(1)):
                logits, state = model.decode_step(prev, memory, state)
                steps.append(logits)
                if t + 1 < b.tgt_in.size(1):
                    prev = logits.argmax(-1).masked_fill(pad[:, t + 1], PAD_ID)
            want = torch.stack(steps, dim=1)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, model(b.src, b.tgt_in).detach())


@pytest.mark.parametrize("family", ["transformer", "rnn-bahdanau"])
def test_the_share_of_own_tokens_follows_the_schedule(family):
    schedule = ScheduledSampling("linear", ss_k=1.0, ss_c=1e-4, ss_min_teacher_forcing=0.1)
    torch.manual_seed(0)
    model = FAMILIES[family](dropout=0.1).train()
    for update in (0, 2_500, 5_000, 7_500, 20_000):
        mix = schedule.mixer(update, seed=3, device="cpu", pad_id=PAD_ID)
        expected = 1.0 - schedule.teacher_forcing_rate(update)  # 0, .25, .5, .75, .9 (the floor)
        if expected == 0:
            assert mix is None
            continue
        loss, _ = batch_loss(model, batch(n=96, seed=update), 0.1, mix)
        loss.backward()  # gradients flow through the mixed pass
        sampled, eligible = mix.counts
        assert eligible > 600
        # about 3 standard deviations of a binomial share over this many positions
        assert abs(sampled / eligible - expected) < 3 * math.sqrt(expected * (1 - expected) / eligible) + 0.01


def test_draws_are_seeded_by_update_and_worker():
    schedule = ScheduledSampling("exponential", ss_k=0.99)
    logits = torch.randn(4, 10, VOCAB)
    ref = pad_batch([[5] * 10] * 4, PAD_ID, prefix=BOS_ID, suffix=EOS_ID)[:, 1:11]

    def draw(update, seed):
        return schedule.mixer(update, seed, "cpu", PAD_ID)(ref, logits)

    assert torch.equal(draw(50, 1), draw(50, 1))  # a resumed run repeats its draws
    assert not torch.equal(draw(50, 1), draw(50, 2))  # workers differ
    assert not torch.equal(draw(50, 1), draw(51, 1))  # updates differ
