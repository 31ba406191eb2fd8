"""Loading a model (model/formats/native.py `assemble`, behind our checkpoints and the Marian and M2M100
loaders): built on the meta device, weights placed straight on the target device and dtype, the same
weights bit for bit as the model that was saved, tied weights still one tensor, and the same errors."""

import copy
import os
import subprocess
import sys
from dataclasses import asdict

import pytest
import torch

import model.formats.native as checkpoint
from model.decoding.beam import DecodeConfig, beam_search
from model.errors import CheckpointError
from model.formats.native import assemble, load_checkpoint, save_checkpoint, unique_state
from model.tokenizers import Tokenizer, train_sentencepiece
from tests.conftest import ROOT
from tests.helpers import tiny_rnn, tiny_transformer
from tests.unit.test_tokenizer import CORPUS

MODELS = {
    "transformer-tied": lambda v: tiny_transformer(v),
    "transformer-untied": lambda v: tiny_transformer(v, tie_output=False, share_embeddings=False),
    "transformer-stored-positions": lambda v: tiny_transformer(v, tie_output=False, positions="stored",
                                                                max_positions=16),
    "rnn": lambda v: tiny_rnn(v, attention="bahdanau"),
    "rnn-gru-untied": lambda v: tiny_rnn(v, cell="gru", attention="luong_general", tie_output=False),
}
SRC = torch.tensor([[5, 6, 7, 3], [8, 9, 3, 0]])
DECODE = DecodeConfig(beam_size=2, max_len_b=5)


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(train_sentencepiece(CORPUS, vocab_size=100))


def state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers under every name, tied ones included."""
    return {**dict(model.named_parameters(remove_duplicate=False)), **dict(model.named_buffers(remove_duplicate=False))}


def assert_same_state(got: torch.nn.Module, want: torch.nn.Module) -> None:
    a, b = state_of(got), state_of(want)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert torch.equal(a[k], b[k]), k


def assert_loaded(model: torch.nn.Module) -> None:
    """Eval mode, trainable parameters, nothing left on the meta device, and a tied output layer still
    the embeddings' tensor."""
    assert not model.training
    assert all(p.requires_grad for p in model.parameters())
    assert not any(t.is_meta for t in state_of(model).values())
    if model.cfg.tie_output:
        assert model.output.weight is model.tgt_embed.weight
    if model.cfg.share_embeddings:
        assert model.tgt_embed is model.src_embed


@pytest.mark.parametrize("dtype", [None, torch.float32, torch.bfloat16], ids=["default", "fp32", "bf16"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_checkpoint_loads_to_the_saved_weights_and_decodes_alike(tmp_path, tokenizer, name, dtype):
    saved = MODELS[name](tokenizer.src_vocab_size).eval()
    save_checkpoint(str(tmp_path / "ckpt"), saved, tokenizer)
    loaded = load_checkpoint(str(tmp_path / "ckpt"), dtype=dtype).model
    want = copy.deepcopy(saved).to(dtype=dtype)  # what moving the whole model gave
    assert_same_state(loaded, want)
    assert_loaded(loaded)
    with torch.no_grad():
        got, ref = beam_search(loaded, SRC, DECODE), beam_search(want, SRC, DECODE)
    assert [[h.tokens for h in row] for row in got] == [[h.tokens for h in row] for row in ref]
    if name.startswith("transformer") and not name.endswith("stored-positions"):
        # The sinusoidal tables: built when first needed, on the weights' device, never on meta.
        assert loaded.positions.tables and all(not t.is_meta for t in loaded.positions.tables.values())


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["default", "bf16"])
def test_fp16_weights_load_as_through_float32(tmp_path, tokenizer, dtype):
    """fp16 -> dtype directly is what fp16 -> float32 (the built model) -> dtype gave, bit for bit."""
    saved = tiny_transformer(tokenizer.src_vocab_size)
    save_checkpoint(str(tmp_path / "ckpt"), saved, tokenizer, weights_dtype=torch.float16)
    loaded = load_checkpoint(str(tmp_path / "ckpt"), dtype=dtype).model
    want = copy.deepcopy(saved).half().float().to(dtype=dtype)
    assert_same_state(loaded, want)
    assert_loaded(loaded)


def test_float64_weights_round_to_float32_first():
    """A source in a dtype wider than the model's rounds as the copy into the float32 model rounded it."""
    saved = tiny_transformer()
    state = {k: v.double() + 1e-9 for k, v in unique_state(saved).items()}  # not representable in fp32
    loaded = assemble("transformer", asdict(saved.cfg), state, "here", dtype=torch.bfloat16)
    for k, v in unique_state(loaded).items():
        assert torch.equal(v, state[k].float().to(torch.bfloat16)), k


def test_the_model_is_built_on_meta_and_weights_are_not_copied(monkeypatch):
    built = []

    def spy(arch, model_config):
        model = build_model(arch, model_config)
        built.append({t.device.type for t in state_of(model).values()})
        return model

    build_model = checkpoint.build_model
    monkeypatch.setattr(checkpoint, "build_model", spy)
    saved = tiny_transformer(tie_output=True)
    state = {k: v.clone() for k, v in unique_state(saved).items()}
    loaded = assemble("transformer", asdict(saved.cfg), state, "here")
    assert built == [{"meta"}]
    # Already on the device in the dtype asked for: the state's tensors are the parameters, no copy.
    for k, v in unique_state(loaded).items():
        assert v.data_ptr() == state[k].data_ptr(), k
    assert_loaded(loaded)


def test_one_stored_tensor_for_two_untied_weights_loads_as_two():
    """A source may hold one tensor under two names that our config keeps apart (Marian's shared
    embeddings with an untied output layer): they must not become one parameter, or training would
    update one memory through both."""
    saved = tiny_transformer(share_embeddings=False, tie_output=False)
    state = unique_state(saved)
    state["tgt_embed.weight"] = state["src_embed.weight"]
    loaded = assemble("transformer", asdict(saved.cfg), state, "here")
    src, tgt = loaded.src_embed.weight, loaded.tgt_embed.weight
    assert torch.equal(src, tgt) and src.untyped_storage().data_ptr() != tgt.untyped_storage().data_ptr()


def test_a_loaded_model_trains_and_its_tied_weights_move_together():
    saved = tiny_transformer()
    state = {k: v.clone() for k, v in unique_state(saved).items()}  # the parameters will be these tensors
    loaded = assemble("transformer", asdict(saved.cfg), state, "here").train()
    opt = torch.optim.SGD(loaded.parameters(), lr=0.1)
    loss = loaded(SRC, torch.tensor([[2, 5, 6], [2, 8, 9]])).logsumexp(-1).sum()
    loss.backward()
    opt.step()
    assert not torch.equal(loaded.output.weight, saved.output.weight)
    assert loaded.output.weight is loaded.tgt_embed.weight


def test_a_tensor_left_on_meta_is_an_error_naming_it(monkeypatch):
    """State a constructor makes that is neither a parameter nor a persistent buffer is built on meta
    and never loaded: refused, not run."""
    build_model = checkpoint.build_model

    def with_plain_table(arch, model_config):
        model = build_model(arch, model_config)
        model.decoder[0].table = torch.arange(4.0)  # under the meta device, as __init__ would be
        return model

    monkeypatch.setattr(checkpoint, "build_model", with_plain_table)
    saved = tiny_transformer()
    with pytest.raises(CheckpointError, match=r"^here: decoder\.0\.table was not loaded \(still on the meta"):
        assemble("transformer", asdict(saved.cfg), unique_state(saved), "here")


@pytest.mark.parametrize("change, message", [
    ("missing", r"^here does not fit the config \(missing \['decoder.1.ffn.fc2.bias'\], unexpected \[\]\)$"),
    ("extra", r"^here does not fit the config \(missing \[\], unexpected \['surplus'\]\)$"),
    ("shape", r"^here: tensor output.bias has shape \(3,\), the config expects \(16,\)$"),
    ("config", r"^here: invalid model config \(.*n_heads.*\)$"),
])
def test_a_state_that_does_not_fit_is_the_same_error(change, message):
    saved = tiny_transformer()
    state, config = unique_state(saved), asdict(saved.cfg)
    if change == "missing":
        del state["decoder.1.ffn.fc2.bias"]
    elif change == "extra":
        state["surplus"] = torch.zeros(2)
    elif change == "shape":
        state["output.bias"] = torch.zeros(3)
    else:
        config["n_heads"] = 5
    with pytest.raises(CheckpointError, match=message):
        assemble("transformer", config, state, "here")


PEAK = """
import gc, sys, torch
from dataclasses import asdict
from model.formats.native import assemble, unique_state
from tests.helpers import tiny_transformer

def peak_growth(state, cfg, dtype):
    gc.collect()
    rss = lambda key: int(next(line for line in open("/proc/self/status") if line.startswith(key)).split()[1])
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak (VmHWM) to the current resident size
    before = rss("VmRSS:")
    model = assemble("transformer", cfg, state, "here", dtype=dtype)
    return (rss("VmHWM:") - before) * 1024, model

saved = tiny_transformer(16000, d_model=512, n_heads=8, enc_layers=1, dec_layers=1, ff_dim=1024)
cfg, state = asdict(saved.cfg), {k: v.clone() for k, v in unique_state(saved).items()}
del saved
size = sum(v.numel() * v.element_size() for v in state.values())
imported = "torch._dynamo" in sys.modules
assemble("transformer", asdict(tiny_transformer().cfg), unique_state(tiny_transformer()), "warm-up")
print(int(not imported and "torch._dynamo" in sys.modules))
growth, _ = peak_growth(state, cfg, None)
print(growth / size)
growth, _ = peak_growth(state, cfg, torch.bfloat16)
print(growth / size)
"""


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's resettable peak RSS")
def test_loading_holds_no_extra_copy_of_the_model():
    """Peak resident memory while loading a ~50 MB float32 state: nothing new for float32 on the CPU
    (building the model in float32 alone took 1x), half of it for bfloat16 (1.5x before). And building
    on meta does not import torch._dynamo (~70 MB, ~2 s), as initialising meta tensors would."""
    out = subprocess.run([sys.executable, "-c", PEAK], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr
    dynamo, fp32, bf16 = map(float, out.stdout.split())
    assert not dynamo
    assert fp32 < 0.25, fp32
    assert bf16 < 0.75, bf16
