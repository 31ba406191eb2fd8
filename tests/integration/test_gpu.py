"""The GPU path on a real GPU (every test is gpu-marked: skipped without CUDA; scripts/gpu_check.sh runs them).

What CPU tests cannot show: half precision against the CPU's fp32 on the shipped model, the fused
attention kernels, a real out-of-memory split, the job on whole and fractional GPUs, training with
--use-gpu and its resume, CTranslate2 on the GPU. (One host sync per decoding step: tests/unit/test_search_syncs.py.)
"""

import json
import os
import subprocess
import sys

import pytest
import sacrebleu

from model.decoding import DecodeConfig
from pipeline.columns import HYP_IDS
from pipeline.io import read_table
from pipeline.stages import Detokenize, Tokenize, Translator
from tests.conftest import ROOT, SAMPLE

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu

SHIPPED = os.path.join(ROOT, "models", "multi30k-en-de")
BEAM5 = DecodeConfig(beam_size=5)


@pytest.fixture(scope="module")
def sample():
    table = read_table(SAMPLE)
    return (Tokenize(SHIPPED, "source", 256, "split", {})(table.select(["id", "source"])),
            table.column("reference").to_pylist())


@pytest.fixture(scope="module")
def cpu_fp32(sample):
    tokenized, refs = sample
    out = Detokenize(SHIPPED, 1, False, {})(Translator(SHIPPED, BEAM5, "fp32", 24000, 4, {})(tokenized))
    return out.column("translation").to_pylist()


def translations(tokenized, precision: str, **kw) -> list[str]:
    actor = Translator(SHIPPED, BEAM5, precision, kw.pop("max_tokens", 0), 1, {}, gpus_per_actor=1, **kw)
    assert actor.device.type == "cuda"
    return Detokenize(SHIPPED, 1, False, {})(actor(tokenized)).column("translation").to_pylist()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_the_shipped_model_in_half_precision_on_gpu_scores_as_fp32_on_cpu(sample, cpu_fp32, precision):
    tokenized, refs = sample
    gpu = translations(tokenized, precision)
    bleu = {name: sacrebleu.corpus_bleu(t, [refs]).score for name, t in (("cpu fp32", cpu_fp32), (precision, gpu))}
    same = sum(a == b for a, b in zip(gpu, cpu_fp32, strict=True))
    print(f"{precision}: BLEU {bleu}, {same} of {len(gpu)} identical to CPU fp32")
    assert abs(bleu[precision] - bleu["cpu fp32"]) <= 0.3, bleu
    assert same >= 0.8 * len(gpu), same


def test_decoding_on_gpu_runs_in_the_fused_attention_kernels(sample):
    """With the math kernel ruled out, scaled_dot_product_attention raises where its inputs do not suit
    the fused kernels (for instance keys whose head dimension is not contiguous)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    tokenized, _ = sample
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
        assert all(translations(tokenized.slice(0, 64), "bf16", max_tokens=24000))


def test_a_batch_out_of_gpu_memory_is_split_and_translated(sample):
    """The memory limit is set just above what a small batch needs, so the whole sample in one batch
    runs out of memory for real; it is halved until it fits and every row is translated."""
    from model.decoding import prepare_for_decoding, translate_ids
    from model.formats import load_model

    tokenized, _ = sample
    pieces = [p[0] for p in tokenized.column("__pieces").to_pylist() if p]
    model = prepare_for_decoding(load_model(SHIPPED, device="cuda", dtype=torch.float32).model)
    expected, _ = translate_ids(model, pieces, BEAM5, 24000, "cuda")
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    translate_ids(model, pieces[:8], BEAM5, 10**9, "cuda")
    small = torch.cuda.max_memory_allocated() - base
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_reserved() + 4 * small) / total))
    calls = []
    try:
        from model.decoding import search

        def counted(src, cfg, prefix):
            calls.append(src.size(0))
            return search(model, src, cfg, prefix)

        split, _ = translate_ids(model, pieces, BEAM5, 10**9, "cuda", search_batch=counted)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    print(f"batches tried: {calls}")
    assert calls[0] == len(pieces) and len(calls) > 2  # the whole batch failed, its halves were tried
    same = sum([h.tokens for h in a] == [h.tokens for h in b] for a, b in zip(split, expected, strict=True))
    assert same >= 0.97 * len(pieces), same  # other batch shapes may flip a near-tie


def run_job(tmp_path, name, *flags):
    out = tmp_path / name
    cmd = [sys.executable, os.path.join(ROOT, "jobs", "translate_corpus.py"), "--input", SAMPLE, "--output", str(out),
           "--model", SHIPPED, "--metrics", "bleu", *flags]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "RAY_ADDRESS": "local"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    report = json.loads((out / "report.json").read_text())
    return report, read_table(str(out / "translations")), res.stdout + res.stderr


def test_the_job_on_a_whole_gpu_and_on_half_gpus(tmp_path, cpu_fp32, sample):
    _, refs = sample
    whole, rows, log = run_job(tmp_path, "whole", "--gpus-per-actor", "1")
    assert whole["decode"]["precision"] == "bf16" and rows.num_rows == 300
    assert sorted(rows.column("id").to_pylist()) == sorted(read_table(SAMPLE).column("id").to_pylist())
    assert "token budget" in log  # the actor measured its budget on the GPU
    # Two actors of half a GPU each, on the one GPU, both decoding (small calls so both get work).
    half, rows_half, _ = run_job(tmp_path, "half", "--gpus-per-actor", "0.5", "--actors", "2", "--batch-rows", "32")
    assert len(half["run"]["actor_rows"]) == 2, half["run"]["actor_rows"]
    assert rows_half.num_rows == 300
    bleu = {k: r["overall"]["scores"]["bleu"]["score"] for k, r in (("whole", whole), ("half", half))}
    cpu = sacrebleu.corpus_bleu(cpu_fp32, [refs]).score
    assert abs(bleu["whole"] - cpu) <= 0.3 and abs(bleu["half"] - cpu) <= 0.3, (bleu, cpu)


def test_training_on_gpu_and_its_resume(tmp_path, sample_corpus):
    from jobs.train_model import main as train
    from jobs.train_tokenizer import main as train_tokenizer
    from model.formats import load_checkpoint

    tok = str(tmp_path / "tok")
    assert train_tokenizer(["--input", sample_corpus, "--output", tok, "--vocab-size", "300"]) == 0
    out = str(tmp_path / "model")
    common = ["--train", sample_corpus, "--valid", sample_corpus, "--valid-max-sentences", "16", "--tokenizer", tok,
              "--output", out, "--layers", "2", "--d-model", "64", "--heads", "4", "--ff-dim", "128",
              "--use-gpu", "--num-workers", "1", "--max-tokens", "2000", "--validate-every", "20", "--log-every", "10",
              "--warmup", "5", "--lr", "3e-3"]
    assert train([*common, "--max-steps", "40"]) == 0
    assert train([*common, "--max-steps", "60", "--resume"]) == 0
    with open(os.path.join(out, "training_log.jsonl")) as f:
        log = [json.loads(line) for line in f]
    assert [h["step"] for h in log] == [20, 40, 60]
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    last = load_checkpoint(os.path.join(out, "last"))
    assert last.metadata["training"]["step"] == 60 and last.metadata["training"]["device"].startswith("cuda")


def test_ctranslate2_on_gpu(sample):
    ct2 = pytest.importorskip("ctranslate2")
    if ct2.get_cuda_device_count() == 0:
        pytest.skip("this CTranslate2 build sees no CUDA device")
    tokenized, refs = sample
    actor = Translator(SHIPPED, DecodeConfig(beam_size=4), "fp16", 0, 1, {}, engine="ctranslate2", gpus_per_actor=1)
    out = Detokenize(SHIPPED, 1, False, {})(actor(tokenized))
    assert sacrebleu.corpus_bleu(out.column("translation").to_pylist(), [refs]).score > 30
    assert out.num_rows == tokenized.num_rows and HYP_IDS not in out.column_names
