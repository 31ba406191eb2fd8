#!/usr/bin/env bash
# The most evidence one GPU gives in ~10 minutes, in one folder, failures included.
#
#   bash scripts/gpu_check.sh [OUT_DIR]        (default: runs/gpu_check-<UTC time>)
#
# Steps, each under `timeout` (a step that fails or runs out of time is recorded and the next one runs):
#   setup      installs the project unless it imports already; a CUDA torch that is present is kept
#              (scripts/setup.sh installs torch only where none is installed)
#   env        GPU, driver, torch/CUDA, package versions, which cuBLAS the machine has (CTranslate2's
#              wheels load CUDA 12's)
#   engines    bench/engines.py --device cuda: ours in fp16/bf16 against transformers (and CTranslate2
#              float16/bfloat16/int8_float16 where it runs) on test_2016_flickr, the long set and the
#              Transformer-base shape; then the whole job on 30,000 sentences on one GPU actor
#   tests      every gpu-marked test (tests/integration/test_gpu.py and the others): half precision against the CPU's
#              fp32, fused attention kernels, host syncs per step, a real out-of-memory split, the job on
#              whole and half GPUs, training with --use-gpu and its resume, CTranslate2 on the GPU
#   job-half   the same 30,000 sentences on two actors of half a GPU each (--gpus-per-actor 0.5)
#   train      40 updates of a Transformer-base on Multi30k with --use-gpu, then a resume to 60
# Each step's output is <step>.log; summary.tsv has one line per step (name, exit status, seconds,
# command); engines_gpu.json, the job reports and the training log are copied beside them.
# Then: cp OUT_DIR/engines_gpu.json bench/results/ && python bench/make_docs.py
#
# Environment: DATA, a folder with Multi30k's {train,val,test_2016_flickr}.{en,de}.gz (default:
# ../shared/data/multi30k or data/multi30k); PYTHON (default python3); SCALE multiplies every step's
# time limit (default 1); LONG, inputs of the engines' long set (default 100; 0 leaves it out); SIZES,
# PRECISIONS and ENGINES narrow the engines step (defaults "shipped,base", "fp16,bf16,int8_fp16",
# "ours,ctranslate2,transformers"); STEPS, the steps to run (default "env engines tests job train": a
# machine lent in slices of 10 minutes runs "env engines tests" and then "job train" into the same OUT_DIR).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/gpu_check-$(date -u +%Y%m%dT%H%M%SZ)}
PY=${PYTHON:-python3}
SCALE=${SCALE:-1}
if [ -z "${DATA:-}" ]; then
  for d in ../shared/data/multi30k data/multi30k; do [ -d "$d" ] && DATA=$d && break; done
fi
mkdir -p "$OUT/work"
OUT=$(cd "$OUT" && pwd)
SUMMARY="$OUT/summary.tsv"
[ -f "$SUMMARY" ] || printf 'step\texit\tseconds\tcommand\n' > "$SUMMARY"
export PYTHONUNBUFFERED=1 RAY_ADDRESS=local
STEPS=" ${STEPS:-env engines tests job train} "
want() { [[ $STEPS == *" $1 "* ]]; }

# step NAME SECONDS COMMAND...: runs COMMAND under timeout, its output in NAME.log, a line in summary.tsv.
step() {
  local name=$1 limit=$2 start rc
  shift 2
  limit=$(awk -v s="$limit" -v k="$SCALE" 'BEGIN { printf "%d", s * k }')
  start=$(date +%s)
  echo "== $name (limit ${limit}s): $*"
  timeout --kill-after=15 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  [ $rc -eq 124 ] && echo "timed out after ${limit}s" >> "$OUT/$name.log"
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - start ))" "$*" >> "$SUMMARY"
  echo "   exit $rc in $(( $(date +%s) - start ))s"
  return 0
}

if ! "$PY" -c "import ray, torch, pyarrow, sentencepiece, sacrebleu, safetensors" 2>/dev/null; then
  step setup 600 env PYTHON="$PY" scripts/setup.sh --dev
fi

# Ray's own programs (gcs_server, raylet) must be executable: a Ray unpacked from its wheel by a plain
# unzip (as on machines with no package index) loses the bits, and every Ray start then fails with
# "Permission denied". pip sets them; this repairs the other case.
"$PY" - <<'EOF'
import os, stat, ray
core = os.path.join(os.path.dirname(ray.__file__), "core", "src", "ray")
for sub in ("gcs/gcs_server", "raylet/raylet"):
    path = os.path.join(core, sub)
    if os.path.exists(path) and not os.access(path, os.X_OK):
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        print(f"made {path} executable")
EOF

want env && step env 30 bash -c "
  nvidia-smi; echo
  $PY -c 'import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"device\",
    torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    \"memory GiB\", round(torch.cuda.mem_get_info()[1] / 2**30, 1) if torch.cuda.is_available() else None)'
  for m in ray transformers ctranslate2 sacrebleu sentencepiece pyarrow numpy; do
    $PY -c \"import \$m; print('\$m', \$m.__version__)\" 2>&1 | tail -1
  done
  echo 'cuBLAS libraries:'; ldconfig -p | grep -i cublas || true
  find / -xdev -name 'libcublas.so.1[0-9]*' 2>/dev/null | head -5
  nproc; free -g"

if [ -z "${DATA:-}" ] || [ ! -f "$DATA/test_2016_flickr.en.gz" ] || [ ! -f "$DATA/train.en.gz" ]; then
  echo "no Multi30k data (DATA=${DATA:-unset}): engines, job and train are left out" | tee "$OUT/no_data.log"
  STEPS=" $(want env && echo env) $(want tests && echo tests) "
fi

# The engines in their own processes, one per engine and precision: ours and transformers in fp16 and
# bf16, CTranslate2 also in int8_float16 (left out, and said so in the JSON, where it is not installed).
# --repeats 2: a process's first pass also loads the CUDA kernels of each new shape (lazily since CUDA 12).
# The first check (2026-12-04, one pass) took 6.5-7.4 s for 300 captions in one fp16/bf16 batch, where a
# warm process decoded 128 sentences in ~0.3 s: the faster of two passes is kept.
want engines && step engines 300 "$PY" bench/engines.py --device cuda --data "$DATA" --sizes "${SIZES:-shipped,base}" \
  --precisions "${PRECISIONS:-fp16,bf16,int8_fp16}" --engines "${ENGINES:-ours,ctranslate2,transformers}" --sentences 300 \
  --long "${LONG:-100}" --base-sentences 200 --threads 1 --max-tokens 400000 --ct2-batch-tokens 16384 --rounds 1 \
  --repeats 2 --job-sentences 30000 --job-engines ours --out "$OUT/engines_gpu.json"
cp "$OUT/engines.log" "$OUT/engines_runs.jsonl" 2>/dev/null  # each finished run's line, if the step ran out of time

want tests && step tests 240 "$PY" -m pytest -m gpu -v -rA -p no:cacheprovider tests/ \
  -k "not the_engines_benchmark" --junitxml="$OUT/gpu_tests.xml"

if want job; then
  step corpus 60 "$PY" - "$DATA" "$OUT/work" <<'EOF'
import gzip, os, sys
import pyarrow as pa, pyarrow.parquet as pq
data, work = sys.argv[1:]
read = lambda name: gzip.open(os.path.join(data, name), "rt", encoding="utf-8").read().splitlines()
src, ref = read("test_2016_flickr.en.gz"), read("test_2016_flickr.de.gz")
os.makedirs(f"{work}/job-corpus", exist_ok=True)
n, shards = 30000, 8
ids = [f"s{i}" for i in range(n)]
for s in range(shards):
    part = range(s * n // shards, (s + 1) * n // shards)
    pq.write_table(pa.table({"id": [ids[i] for i in part], "source": [src[i % len(src)] for i in part],
                             "reference": [ref[i % len(ref)] for i in part]}), f"{work}/job-corpus/part-{s}.parquet")
EOF
  step job-half 120 "$PY" jobs/translate_corpus.py --input "$OUT/work/job-corpus" --output "$OUT/work/job-half" \
    --beam-size 4 --metrics bleu --gpus-per-actor 0.5 --actors 2 --precision fp16
  cp "$OUT/work/job-half/report.json" "$OUT/job_half_report.json" 2>/dev/null
fi

if want train; then
  step prepare 60 "$PY" jobs/prepare_corpus.py --source "$DATA/train.en.gz" --target "$DATA/train.de.gz" \
    --output "$OUT/work/train"
  step prepare-val 30 "$PY" jobs/prepare_corpus.py --source "$DATA/val.en.gz" --target "$DATA/val.de.gz" \
    --output "$OUT/work/val"
  step tokenizer 60 "$PY" jobs/train_tokenizer.py --input "$OUT/work/train" --output "$OUT/work/tok" \
    --vocab-size 8000
  train=("$PY" jobs/train_model.py --train "$OUT/work/train" --valid "$OUT/work/val" --valid-max-sentences 200
         --tokenizer "$OUT/work/tok" --output "$OUT/work/model" --layers 6 --d-model 512 --heads 8 --ff-dim 2048
         --use-gpu --num-workers 1 --max-tokens 16000 --validate-every 20 --log-every 10 --warmup 10)
  step train 120 "${train[@]}" --max-steps 40
  step train-resume 100 "${train[@]}" --max-steps 60 --resume
  cp "$OUT/work/model/training_log.jsonl" "$OUT/training_log.jsonl" 2>/dev/null
fi

rm -rf "$OUT/work"
echo; column -t -s $'\t' "$SUMMARY" 2>/dev/null || cat "$SUMMARY"
echo "everything is in $OUT"
