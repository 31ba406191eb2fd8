#!/usr/bin/env bash
# The route to the published Multi30k results with a small, fast model. Run from the repository root.
# Every stage resumes where it stopped and is skipped once done, so the script can simply be run again.
#   1. Teachers: SEEDS runs of the tiny recipe of Wu et al. (2021) (fairseq transformer_tiny: 4+4 layers,
#      d_model 128, FFN 256, 4 heads, dropout 0.3, shared embeddings; lr 0.005 with 2,000 warmup updates,
#      about 8k tokens per update, up to 150 epochs with patience 10, the average of the last 10 epoch
#      checkpoints).
#   2. Distillation data (sequence-level knowledge distillation, Kim and Rush 2016): the training set
#      translated by the teachers' ensemble with the translation job itself, beam 5.
#   3. The student: the same recipe trained on the ensemble's translations instead of the references.
# Then ship it (val picks between best/ and average/; test is decoded once):
#   python scripts/ship_model.py --run "$WORK/student" --recipe scripts/train_distilled_model.sh --hardware "..."
#
#   DATA, WORK       as in scripts/train_default_model.sh (the data and tokenizer are shared with it)
#   SEEDS            teacher seeds (default "1 2 3"); VOCAB  SentencePiece pieces for a new tokenizer (8000)
#   EXTRA            more training flags, e.g. "--use-gpu" (minutes per run on one GPU; days on 2 CPU cores)
#   TRANSLATE_EXTRA  more translation flags, e.g. "--gpus-per-actor 1"
set -euo pipefail
DATA=${DATA:-../shared/data/multi30k}
WORK=${WORK:-work/multi30k}
SEEDS=${SEEDS:-1 2 3}
VOCAB=${VOCAB:-8000}
if [ ! -d "$WORK/tokenizer" ]; then
  for split in train val test_2016_flickr; do
    python jobs/prepare_corpus.py --source "$DATA/$split.en.gz" --target "$DATA/$split.de.gz" \
      --output "$WORK/$split" --id-prefix "$split" --metadata lang_pair=en-de --overwrite
  done
  python jobs/train_tokenizer.py --input "$WORK/train" --output "$WORK/tokenizer" --vocab-size "$VOCAB"
fi
# Wu et al. train on 2 GPUs x 4,096 tokens; one worker with --update-freq 2 sees the same tokens per update.
tiny=(--arch transformer --layers 4 --d-model 128 --heads 4 --ff-dim 256 --dropout 0.3 --label-smoothing 0.1
      --lr 0.005 --warmup 2000 --max-tokens 4096 --update-freq 2 --max-epochs 150 --validate-every 0
      --patience 10 --keep-checkpoints 10 --average-last 10)
train() {  # output, training data, more flags...
  local out=$1 data=$2; shift 2
  if [ -f "$out/average/config.json" ]; then echo "done: $out"; return; fi
  local resume=""; [ -d "$out/ray/run" ] && resume="--resume"
  # shellcheck disable=SC2086
  python jobs/train_model.py --train "$data" --valid "$WORK/val" --tokenizer "$WORK/tokenizer" --output "$out" \
    --name run $resume "${tiny[@]}" "$@" ${EXTRA:-}
}
teachers=()
for seed in $SEEDS; do
  train "$WORK/teachers/seed$seed" "$WORK/train" --seed "$seed"
  teachers+=(--ensemble "$WORK/teachers/seed$seed/average")
done
# The first teacher is --model, the others join it as --ensemble members.
# shellcheck disable=SC2086
python jobs/translate_corpus.py --input "$WORK/train" --output "$WORK/distilled" \
  --model "${teachers[1]}" "${teachers[@]:2}" --beam-size 5 ${TRANSLATE_EXTRA:-}
# Validation stays on the human references: val picks the checkpoints, as for the teachers.
train "$WORK/student" "$WORK/distilled/translations" --target-column translation --valid-target-column reference \
  --seed 1
