"""One set of weights in three engines, side by side: ours, CTranslate2 and transformers `generate`.

    python bench/engines.py --out bench/results/engines_cpu.json
    python bench/engines.py --sizes shipped --precisions fp32 --sentences 300   # a quick look
    python bench/engines.py --device cuda --precisions fp16,bf16,int8_fp16 --threads 1 --max-tokens 400000 \
        --ct2-batch-tokens 16384 --out bench/results/engines_gpu.json              # one GPU

For each model size (the shipped model, exported with jobs/convert_model.py --to marian and converted
with the stock ct2-transformers-converter; and a Transformer-base shape with random weights, 6+6
layers, d512, 8 heads, ff 2048, 32k vocabulary, decoded to a fixed length), each input set (Multi30k
test_2016_flickr; a long set of three consecutive test sentences joined) and each precision, every
engine runs in its own process, on the same token ids, with the same beam, length penalty and
maximum length, and its own best batching:
    ours          length-sorted token-budget batches (model/decoding/batched.py: what the model actors run)
    ours-fixed    batches of 32 rows in input order (the plain `generate`-in-map_batches loop)
    ctranslate2   token batches on sorted input (max_batch_size tokens, batch_type="tokens")
    transformers  sorted batches of 32 and of 64 rows (the better one is kept); fp32 only
On a GPU (--device cuda) the precisions are fp16 and bf16 for every engine (ours: half-precision weights
and the gathered cache with scaled_dot_product_attention; CTranslate2 float16 / bfloat16; transformers
in that dtype), plus int8_fp16, CTranslate2's int8_float16, set against ours in fp16.
Only decoding is timed (after one warm-up batch): no model loading, no tokenization. Target tokens
count every generated token, EOS included. Then the whole Ray job (jobs/translate_corpus.py) runs on a
corpus of --job-sentences distinct Multi30k sentences (of test_2016_flickr's length; distinct, as the job
decodes identical ones once) and its rate is set against the bare decoder's on test_2016_flickr,
measured once right before and once right after the job (their mean: the VM's speed
drifts by 10-20% over the minutes a job runs): the pipeline's overhead as a number.
Writes one JSON file with every figure and ratio.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SHIPPED = os.path.join(ROOT, "models", "multi30k-en-de")
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "multi30k")


# --- inputs ---------------------------------------------------------------------------------------
def shipped_model() -> dict:
    """Which shipped model the figures are of: bench/make_docs.py names a result made on other weights."""
    with open(os.path.join(SHIPPED, "config.json")) as f:
        config = json.load(f)
    return {"uri": os.path.relpath(SHIPPED, ROOT), "weights_sha256": config["files"]["model.safetensors"]}


def read_lines(path: str) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def input_sets(data: str, sentences: int, long: int) -> dict[str, tuple[list[str], list[str]]]:
    src, ref = read_lines(f"{data}/test_2016_flickr.en.gz"), read_lines(f"{data}/test_2016_flickr.de.gz")
    joined = [(" ".join(src[i:i + 3]), " ".join(ref[i:i + 3])) for i in range(0, len(src) - 2)]
    sets = {"test_2016_flickr": (src[:sentences], ref[:sentences]),
            "long_x3": ([s for s, _ in joined[:long]], [r for _, r in joined[:long]])}
    return {name: pair for name, pair in sets.items() if pair[0]}  # --long 0 leaves the long set out


# --- models ---------------------------------------------------------------------------------------
def export_shipped(work: str, with_ct2: bool = True) -> tuple[str, str]:
    """The shipped model as a Marian directory (our exporter) and as CTranslate2 (the stock converter)."""
    import contextlib
    import io

    from jobs.convert_model import main as convert_model

    hf, ct2 = os.path.join(work, "shipped-hf"), os.path.join(work, "shipped-ct2")
    with contextlib.redirect_stdout(io.StringIO()):  # jobs/convert_model.py --to marian, in this process
        if convert_model(["--to", "marian", "--input", SHIPPED, "--output", hf]):
            raise SystemExit(f"exporting {SHIPPED} failed")
    if with_ct2:
        ct2_convert(hf, ct2)
    return hf, ct2


def ct2_convert(hf: str, out: str) -> None:
    exe = os.path.join(os.path.dirname(sys.executable), "ct2-transformers-converter")
    subprocess.run([exe, "--model", hf, "--output_dir", out, "--force"], check=True, cwd=os.path.dirname(out),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def build_base(work: str, with_ct2: bool = True, vocab_size: int = 32000) -> tuple[str, str]:
    """A Transformer-base shape with random weights, as a Marian directory (and its CTranslate2 conversion).

    Its vocab.json holds the shipped SentencePiece pieces, then filler entries up to 32k ids, so every
    engine reads the same token ids; random weights never end a sentence early, so it is decoded to a
    fixed length (min = max) in every engine.
    """
    import torch
    from transformers import MarianConfig, MarianMTModel

    hf = os.path.join(work, "base-hf")
    os.makedirs(hf, exist_ok=True)
    with open(os.path.join(SHIPPED, "spm.model"), "rb") as f:
        spm_bytes = f.read()
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(spm_bytes)
    vocab = {"</s>": 0, "<unk>": 1}
    for i in range(sp.get_piece_size()):
        if not sp.is_control(i) and not sp.is_unknown(i):
            vocab.setdefault(sp.id_to_piece(i), len(vocab))
    while len(vocab) < vocab_size - 1:
        vocab[f"<filler{len(vocab)}>"] = len(vocab)
    vocab["<pad>"] = len(vocab)
    for name in ("source.spm", "target.spm"):
        with open(os.path.join(hf, name), "wb") as f:
            f.write(spm_bytes)
    with open(os.path.join(hf, "vocab.json"), "w") as f:
        json.dump(vocab, f, ensure_ascii=False)
    pad = vocab["<pad>"]
    config = MarianConfig(vocab_size=len(vocab), decoder_vocab_size=len(vocab), d_model=512, encoder_layers=6,
                          decoder_layers=6, encoder_attention_heads=8, decoder_attention_heads=8,
                          encoder_ffn_dim=2048, decoder_ffn_dim=2048, max_position_embeddings=512,
                          activation_function="swish", scale_embedding=True, pad_token_id=pad,
                          decoder_start_token_id=pad, eos_token_id=0, forced_eos_token_id=0)
    torch.manual_seed(0)
    model = MarianMTModel(config)
    with torch.no_grad():
        model.model.shared.weight[pad].zero_()  # as in real models (CTranslate2 starts from a zero vector)
    model.save_pretrained(hf)
    ct2 = os.path.join(work, "base-ct2")
    if with_ct2:
        ct2_convert(hf, ct2)
    return hf, ct2


# --- one engine, in its own process ----------------------------------------------------------------
def worker(args) -> dict:
    with open(args.worker) as f:
        job = json.load(f)
    engine, precision, threads = job["engine"], job["precision"], job["threads"]
    # Our own ids for our engine; the exported directory's (Marian order) for the others.
    ids = job["ids"] if engine.startswith("ours") else job["marian_ids"]
    beam, max_len, min_len = job["beam"], job["max_len"], job["min_len"]
    if engine.startswith("ours"):
        run = _ours(job, ids, beam, max_len, min_len, precision, threads, fixed=engine == "ours-fixed")
    elif engine == "ctranslate2":
        run = _ctranslate2(job, ids, beam, max_len, min_len, precision, threads)
    else:
        run = _transformers(job, ids, beam, max_len, min_len, precision, threads)
    outputs, seconds = run
    tokens = sum(len(o) + 1 for o in outputs)  # every generated token, EOS included
    result = {"sentences": len(ids), "target_tokens": tokens, "seconds": round(seconds, 3),
              "target_tokens_per_second": round(tokens / seconds, 1),
              "sentences_per_second": round(len(ids) / seconds, 2),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "outputs": outputs}
    if job["device"] == "cuda" and engine != "ctranslate2":  # CTranslate2 keeps its own allocator's figures
        import torch

        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


# Each --precisions value as each engine names it; None: the engine does not run it.
CT2_COMPUTE = {"fp32": "float32", "int8": "int8", "fp16": "float16", "bf16": "bfloat16", "int8_fp16": "int8_float16"}
TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def runs_precision(engine: str, precision: str, device: str) -> bool:
    """Whether `engine` decodes at `precision` on `device` (int8 is ours on CPU only; int8_fp16 is
    CTranslate2's on GPU; transformers runs fp32 on CPU, any float dtype on GPU)."""
    if engine == "ctranslate2":
        return precision in CT2_COMPUTE
    if engine == "transformers":
        return precision == "fp32" or (device == "cuda" and precision in TORCH_DTYPES)
    return precision in TORCH_DTYPES or (precision == "int8" and device == "cpu")


def _ours(job, ids, beam, max_len, min_len, precision, threads, fixed):
    import torch

    from model.decoding import DecodeConfig, decode_streams, prepare_for_decoding, translate_ids
    from model.formats import load_model
    from pipeline.runtime import for_cpu_decoding, setup_cpu_process

    device = job["device"]
    if device == "cpu":
        streams, threads = decode_streams(threads, job["streams"])  # as the translation job's actors do
        setup_cpu_process(threads)
        model = for_cpu_decoding(load_model(job["native"]).model, precision, job["cpu_blas"], threads)
    else:  # as a GPU actor loads it (pipeline/stages/translate.py): the weights in the compute dtype
        streams = 1
        model = prepare_for_decoding(load_model(job["native"], device=device,
                                                dtype=getattr(torch, TORCH_DTYPES[precision])).model)
    cfg = DecodeConfig(beam_size=beam, max_len_a=0, max_len_b=max_len - 1, min_len=min_len)
    batches = [list(range(i, min(i + 32, len(ids)))) for i in range(0, len(ids), 32)] if fixed else None
    translate_ids(model, ids[:8], cfg, job["max_tokens"], device)  # warm-up
    return best_of(job["repeats"], lambda: [h[0].tokens for h in translate_ids(model, ids, cfg, job["max_tokens"],
                                                                                 device, batches=batches,
                                                                                 streams=streams)[0]])


def _ctranslate2(job, ids, beam, max_len, min_len, precision, threads):
    import ctranslate2

    with open(os.path.join(job["ct2"], "shared_vocabulary.json")) as f:
        pieces = json.load(f)
    index = {p: i for i, p in enumerate(pieces)}
    translator = ctranslate2.Translator(job["ct2"], device=job["device"], compute_type=CT2_COMPUTE[precision],
                                        intra_threads=threads, inter_threads=1)
    tokens = [[pieces[i] for i in row] for row in ids]
    opts = dict(beam_size=beam, length_penalty=1.0, max_decoding_length=max_len, min_decoding_length=min_len,
                max_batch_size=job["ct2_batch_tokens"], batch_type="tokens")
    translator.translate_batch(tokens[:8], **opts)  # warm-up
    return best_of(job["repeats"], lambda: [[index[p] for p in r.hypotheses[0]]
                                            for r in translator.translate_batch(tokens, **opts)])


def _transformers(job, ids, beam, max_len, min_len, precision, threads):
    import torch
    from transformers import MarianMTModel

    torch.set_num_threads(threads)
    device = job["device"]
    model = MarianMTModel.from_pretrained(job["hf"]).eval().to(device, getattr(torch, TORCH_DTYPES[precision]))
    pad, eos = model.config.pad_token_id, model.config.eos_token_id
    best = None
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for rows in (32, 64):
        outputs = [None] * len(ids)

        def run(indices, outputs):
            width = max(len(ids[i]) for i in indices)
            batch = torch.full((len(indices), width), pad)
            mask = torch.zeros((len(indices), width), dtype=torch.long)
            for r, i in enumerate(indices):
                batch[r, :len(ids[i])] = torch.tensor(ids[i])
                mask[r, :len(ids[i])] = 1
            with torch.no_grad():
                out = model.generate(input_ids=batch.to(device), attention_mask=mask.to(device), num_beams=beam,
                                     length_penalty=1.0, early_stopping=True, max_new_tokens=max_len,
                                     min_new_tokens=min_len)
            for r, i in enumerate(indices):
                outputs[i] = [t for t in out[r, 1:].tolist() if t not in (pad, eos)]

        run(order[:4], outputs)  # warm-up

        def everything(rows=rows, outputs=outputs):
            for start in range(0, len(order), rows):
                run(order[start:start + rows], outputs)
            return list(outputs)

        result, seconds = best_of(job["repeats"], everything)
        if best is None or seconds < best[1]:
            best = (result, seconds, rows)
    return best[0], best[1]


def best_of(repeats: int, decode) -> tuple[list, float]:
    """(outputs, seconds) of the fastest of `repeats` timed runs: this shared VM's speed drifts by 10-20%
    between runs, and the minimum is the least disturbed figure for every engine alike."""
    best = None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        outputs = decode()
        seconds = time.perf_counter() - t0
        if best is None or seconds < best[1]:
            best = (outputs, seconds)
    return best


class EngineFailed(Exception):
    """An engine's process failed; the benchmark records it and goes on with the others."""


def interleaved(work: str, engines: list[str], base: dict, rounds: int) -> dict[str, dict]:
    """Each engine's fastest run over `rounds` rounds, every round running each engine once (in its own
    process, `repeats` timed runs) and reversing the order of the one before.

    The engines' speeds are compared with each other, and this VM's speed drifts by 10-20% within an
    hour: run one after the other, the engine measured in a fast spell would win by the drift.
    Interleaved, every engine is measured early and late alike. `round_tokens_per_second` keeps each
    round's figure, so the drift shows in the JSON."""
    best: dict[str, dict] = {}
    failed: set[str] = set()
    for i in range(max(1, rounds)):
        for engine in engines if i % 2 == 0 else engines[::-1]:
            if engine in failed:
                continue
            try:
                r = run_engine(work, {**base, "engine": engine})
            except EngineFailed as e:
                failed.add(engine)
                best[engine] = {"error": str(e)}
                continue
            seen = best.get(engine, {}).get("round_tokens_per_second", []) + [r["target_tokens_per_second"]]
            if engine not in best or r["target_tokens_per_second"] > best[engine]["target_tokens_per_second"]:
                best[engine] = r
            best[engine]["round_tokens_per_second"] = seen
    return {engine: best[engine] for engine in engines}


def run_engine(work: str, job: dict) -> dict:
    path = os.path.join(work, "job.json")
    with open(path, "w") as f:
        json.dump(job, f)
    out = subprocess.run([sys.executable, __file__, "--worker", path], capture_output=True, text=True)
    if out.returncode:
        raise EngineFailed(f"{job['engine']} ({job['precision']}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the whole job --------------------------------------------------------------------------------
def job_vs_bare(work: str, data: str, sentences: int, threads: int, max_tokens: int, engine: str = "ours",
                gpu_precision: str | None = None) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = job_sentences(data, sentences)
    rows = [(f"s{i}", text) for i, text in enumerate(src)]
    corpus = os.path.join(work, "job-corpus")
    os.makedirs(corpus, exist_ok=True)
    per = -(-len(rows) // 8)
    for s in range(8):
        chunk = rows[s * per:(s + 1) * per]
        pq.write_table(pa.table({"id": [r[0] for r in chunk], "source": [r[1] for r in chunk]}),
                       os.path.join(corpus, f"part-{s}.parquet"))
    out = os.path.join(work, f"job-out-{engine}")
    # The job's own compute defaults (on CPUs: one 1-thread model actor per core, less one CPU for the
    # other stages), as a user runs it.
    cmd = [sys.executable, os.path.join(ROOT, "jobs", "translate_corpus.py"), "--input", corpus, "--output", out,
           "--beam-size", "4", "--overwrite", "--engine", engine]
    # On a GPU the job's own budget (each actor measures it from its memory), as a user runs it.
    cmd += ["--gpus-per-actor", "1", "--precision", gpu_precision] if gpu_precision else ["--max-tokens",
                                                                                          str(max_tokens)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "RAY_ADDRESS": "local"})
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    run = report["run"]
    bleu = report.get("overall", {}).get("scores", {}).get("bleu")
    return {"engine": engine, "bleu": round(bleu["score"], 2) if bleu else None,
            "sentences": run["sentences"], "seconds": run["seconds"],
            "target_tokens_per_second": run["target_tokens_per_second"],
            "target_tokens_per_actor_second": run["target_tokens_per_actor_second"],
            "actors": len(run["actor_rows"]), "gpu_precision": gpu_precision,
            "command": job_command(sentences, max_tokens, engine, gpu_precision)}


def job_sentences(data: str, sentences: int) -> list[str]:
    """`sentences` distinct English sentences of Multi30k (train, then val): the job decodes identical
    segments once (in-run deduplication), so a corpus of test_2016_flickr repeated would time one decode of
    each and copies. Their length is test_2016_flickr's (12 words on average), so their target tokens/s
    compare with the bare decoder's on it. No references: the shipped model was trained on these."""
    seen = dict.fromkeys(read_lines(f"{data}/train.en.gz") + read_lines(f"{data}/val.en.gz"))
    if len(seen) < sentences:
        raise SystemExit(f"--job-sentences {sentences}: Multi30k holds {len(seen):,} distinct sentences")
    return list(seen)[:sentences]


def job_command(sentences: int, max_tokens: int, engine: str = "ours", gpu_precision: str | None = None) -> str:
    """How the whole-job figure is produced (corpus: `sentences` distinct Multi30k sentences, 8 shards)."""
    return (f"python jobs/translate_corpus.py --input <{sentences:,} distinct sentences in 8 shards> --output <dir> "
            "--beam-size 4" + ("" if gpu_precision else f" --max-tokens {max_tokens}")
            + (f" --engine {engine}" if engine != "ours" else "")
            + (f" --gpus-per-actor 1 --precision {gpu_precision}" if gpu_precision else ""))


# --- driver ---------------------------------------------------------------------------------------
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", default=DATA, help="folder with Multi30k's test_2016_flickr.{en,de}.gz")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where every engine decodes")
    p.add_argument("--sizes", default="shipped,base")
    p.add_argument("--precisions", default=None, help="default: fp32,int8 on CPU; fp16,bf16,int8_fp16 on cuda")
    p.add_argument("--engines", default="ours,ours-fixed,ctranslate2,transformers")
    p.add_argument("--sentences", type=int, default=1000, help="sentences of test_2016_flickr")
    p.add_argument("--long", type=int, default=500, help="inputs of the long set (3 sentences joined)")
    p.add_argument("--base-sentences", type=int, default=200, help="sentences for the base shape (slow)")
    p.add_argument("--base-length", type=int, default=32, help="target tokens per sentence for the base shape")
    p.add_argument("--beam-size", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=24000, help="our token budget per sub-batch")
    p.add_argument("--ct2-batch-tokens", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=1, help="timed runs per engine process; the fastest is kept")
    p.add_argument("--rounds", type=int, default=3, help="rounds of every engine in turn (order reversed "
                   "each round), the fastest run of each engine is kept: the VM's drift hits all engines alike")
    p.add_argument("--cpu-blas", default="auto", help="our engine's --cpu-blas (pipeline/runtime/blas.py)")
    p.add_argument("--streams", type=int, default=0, help="our engine's --cpu-streams: batches decoded at once, "
                   "--threads / streams threads each (0: one per thread)")
    p.add_argument("--job-sentences", type=int, default=30000, help="0: skip the whole-job run (which costs a "
                   "fixed ~15 s of Ray and actor start-up on 2 cores: 30,000 sentences amortise it)")
    p.add_argument("--job-engines", default="ours,ctranslate2", help="the job's --engine values to run it with")
    p.add_argument("--out", default=None, help="default: bench/results/engines_cpu.json (engines_gpu.json on cuda)")
    p.add_argument("--reuse-runs", default=None, help="a result of this script with the same settings: keep its "
                   "engine runs and run only the whole job again (on the same machine)")
    args = p.parse_args()
    gpu = args.device == "cuda"
    args.precisions = args.precisions or ("fp16,bf16,int8_fp16" if gpu else "fp32,int8")
    args.out = args.out or os.path.join(ROOT, "bench", "results", f"engines_{'gpu' if gpu else 'cpu'}.json")
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    import sacrebleu
    import torch

    from bench.machine import cpu_info
    from model.decoding import decode_streams
    from model.formats import load_tokenizer, marian_order
    from pipeline.runtime import numpy_blas, resolve_cpu_blas

    streams, stream_threads = decode_streams(args.threads, args.streams)
    if gpu and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device")
    results = {"machine": {**cpu_info(), "processor": platform.processor() or platform.machine(),
                           "gpu": torch.cuda.get_device_name(0) if gpu else None,
                           "torch": torch.__version__, "numpy_blas": numpy_blas(),
                           "our_cpu_blas": resolve_cpu_blas(args.cpu_blas, stream_threads), "our_streams": streams,
                           "ctranslate2": _version("ctranslate2"), "transformers": _version("transformers")},
               "config": {k: v for k, v in vars(args).items() if k not in ("worker", "data", "out", "reuse_runs")},
               "runs": [],
               "ratios": {}, "model": shipped_model(), "date": time.strftime("%Y-%m-%d", time.gmtime())}
    reused = reused_runs(args.reuse_runs, results["config"]) if args.reuse_runs else None
    sets = input_sets(args.data, args.sentences, args.long)
    engines_asked = args.engines.split(",")
    if "ctranslate2" in engines_asked and _version("ctranslate2") is None:
        results["skipped"] = {"ctranslate2": "not installed"}
        engines_asked.remove("ctranslate2")
        args.job_engines = ",".join(e for e in args.job_engines.split(",") if e != "ctranslate2")
    with_ct2 = "ctranslate2" in engines_asked
    bare = None  # the bare decoder's job (shipped, test_2016_flickr, fp32), for the runs around the whole job
    with tempfile.TemporaryDirectory() as work:
        for size in args.sizes.split(","):
            if reused and size != "shipped":  # only the bare decoder's job around the whole job runs again
                continue
            hf, ct2 = export_shipped(work, with_ct2) if size == "shipped" else build_base(work, with_ct2)
            native = SHIPPED if size == "shipped" else hf
            tok = load_tokenizer(native)
            for set_name, (src, refs) in sets.items():
                n = args.base_sentences if size == "base" else len(src)
                ids = tok.encode_source(src[:n])
                order = marian_order(tok, "source")  # marian id -> ours (identity for the base shape)
                to_marian = {ours: m for m, ours in enumerate(order)}
                back = marian_order(tok, "target")
                # A trained model ends its sentences long before 256 tokens; random weights never do, so
                # the base shape decodes exactly --base-length tokens in every engine.
                max_len, min_len = (256, 1) if size == "shipped" else (args.base_length, args.base_length)
                for precision in args.precisions.split(","):
                    engines = [e for e in engines_asked if runs_precision(e, precision, args.device)]
                    base = {"precision": precision, "device": args.device, "threads": args.threads, "ids": ids,
                            "marian_ids": [[to_marian[i] for i in row] for row in ids],
                            "beam": args.beam_size, "max_len": max_len, "min_len": min_len, "native": native,
                            "hf": hf, "ct2": ct2, "max_tokens": args.max_tokens,
                            "ct2_batch_tokens": args.ct2_batch_tokens, "repeats": args.repeats,
                            "cpu_blas": args.cpu_blas, "streams": args.streams}
                    if (size, set_name) == ("shipped", "test_2016_flickr") and bare is None and "ours" in engines:
                        bare = {**base, "engine": "ours"}  # fp32 on CPU, the first half precision on GPU
                    if reused:
                        continue
                    for engine, r in interleaved(work, engines, base, args.rounds).items():
                        if "error" in r:
                            results.setdefault("failed", []).append(
                                {"size": size, "set": set_name, "precision": precision, "engine": engine,
                                 "error": r["error"]})
                            print(f"{engine} {precision} {size}/{set_name} failed: {r['error']}", flush=True)
                            continue
                        outputs = r.pop("outputs")
                        if size == "shipped":
                            if not engine.startswith("ours"):
                                outputs = [[back[i] for i in o] for o in outputs]
                            texts = tok.decode_target(outputs)
                            r["bleu"] = round(sacrebleu.corpus_bleu(texts, [refs[:n]]).score, 2)
                            r["outputs_sample"] = texts[:3]
                        r.update(size=size, set=set_name, precision=precision, engine=engine)
                        results["runs"].append(r)
                        print(json.dumps({k: v for k, v in r.items() if k != "outputs_sample"}), flush=True)
        if args.job_sentences:
            jobs = {}
            for engine in filter(None, args.job_engines.split(",")):
                around = [run_engine(work, bare)["target_tokens_per_second"]] if bare and engine == "ours" else []
                jobs[engine] = job_vs_bare(work, args.data, args.job_sentences, args.threads, args.max_tokens, engine,
                                           bare["precision"] if gpu and bare else None)
                if around:
                    around.append(run_engine(work, bare)["target_tokens_per_second"])
                    jobs[engine]["bare_tokens_per_second_around"] = around
            results["job"] = jobs.get("ours") or next(iter(jobs.values()))
            results["jobs"] = jobs
    if reused:
        results["runs"], results["machine"], results["date"] = reused["runs"], reused["machine"], reused["date"]
        results["jobs_measured_on"] = time.strftime("%Y-%m-%d", time.gmtime())
    _ratios(results)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results["ratios"], indent=2))
    return 0


def reused_runs(path: str, config: dict) -> dict:
    """--reuse-runs: an earlier result whose engine runs had these settings (the job's may differ)."""
    with open(path) as f:
        earlier = json.load(f)
    job_keys = ("job_sentences", "job_engines")
    differ = {k for k in set(config) | set(earlier["config"]) if k not in job_keys
              and config.get(k) != earlier["config"].get(k)}
    if differ:
        raise SystemExit(f"--reuse-runs {path}: its runs had other settings ({', '.join(sorted(differ))})")
    return earlier


def _ratios(results: dict) -> None:
    by = {(r["size"], r["set"], r["precision"], r["engine"]): r for r in results["runs"]}
    speed = lambda r: r["target_tokens_per_second"]  # noqa: E731
    for (size, set_name, precision, engine), r in by.items():
        key = f"{size}/{set_name}"
        if engine == "ctranslate2" and precision == "int8_fp16" and (size, set_name, "fp16", "ours") in by:
            # CTranslate2's fastest GPU mode has no counterpart of ours: set against ours in fp16.
            results["ratios"][f"{key}: ours fp16 / ctranslate2 int8_fp16"] = round(
                speed(by[(size, set_name, "fp16", "ours")]) / speed(r), 2)
        if engine != "ours":
            continue
        ct2 = by.get((size, set_name, precision, "ctranslate2"))
        # transformers at the same precision (GPU), else in fp32 (on CPU it runs fp32 only).
        hf_precision = precision if (size, set_name, precision, "transformers") in by else "fp32"
        hf = by.get((size, set_name, hf_precision, "transformers"))
        if ct2:
            results["ratios"][f"{key}/{precision}: ours / ctranslate2"] = round(speed(r) / speed(ct2), 2)
        if hf:
            results["ratios"][f"{key}/{precision}: ours / transformers {hf_precision}"] = round(speed(r) / speed(hf), 2)
    job = results.get("job")
    precision = (job or {}).get("gpu_precision") or "fp32"
    bare = by.get(("shipped", "test_2016_flickr", precision, "ours"))
    if job and bare and job.get("engine", "ours") == "ours":
        # The bare decoder right before and after the job when measured (older files: its best round).
        around = job.get("bare_tokens_per_second_around") or [bare["target_tokens_per_second"]]
        results["ratios"][f"job (whole run) / bare decoder, shipped {precision}"] = round(
            job["target_tokens_per_second"] / (sum(around) / len(around)), 2)
    jobs = results.get("jobs", {})
    if "ours" in jobs and "ctranslate2" in jobs:
        results["ratios"][f"job --engine ctranslate2 / job --engine ours, shipped {precision}"] = round(
            jobs["ctranslate2"]["target_tokens_per_second"] / jobs["ours"]["target_tokens_per_second"], 2)


def _version(name: str) -> str | None:
    try:
        return __import__(name).__version__
    except ImportError:
        return None


if __name__ == "__main__":
    sys.exit(main())
