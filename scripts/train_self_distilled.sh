#!/usr/bin/env bash
# The shipped model models/multi30k-en-de: the Transformer of scripts/train_default_model.sh, trained on
# by sequence-level self-distillation (Kim and Rush, 2016, with the teacher as its own student): the model
# translates the training set with the translation job (beam 5), then training continues from its weights
# on every source twice, with the reference and with that translation. Run from the repository root;
# each stage resumes where it stopped.
#   DATA, WORK  as in scripts/train_default_model.sh
#   BASE        the model to distil and start from (default: the average/ that scripts/train_default_model.sh
#               writes, trained first when missing)
#   OUT         the run's folder (default $WORK/tuned); its teacher translations and distillation corpus go
#               beside it ($OUT-teacher, $OUT-corpus), so a second round (BASE=$WORK/tuned/best OUT=$WORK/tuned2)
#               keeps the first round's files
#   EPOCHS      epochs of distillation training (default 10)
#   EXTRA       more training flags (e.g. "--use-gpu"); TRANSLATE_EXTRA more translation flags
set -euo pipefail
WORK=${WORK:-work/multi30k}
BASE=${BASE:-$WORK/model/average}
if [ ! -f "$BASE/config.json" ]; then OUT="$WORK/model" bash scripts/train_default_model.sh; fi
TUNED=${OUT:-$WORK/tuned}
# shellcheck disable=SC2086
python jobs/translate_corpus.py --input "$WORK/train" --output "$TUNED-teacher" --model "$BASE" \
  --beam-size 5 ${TRANSLATE_EXTRA:-}
python scripts/distillation_corpus.py --references "$WORK/train" --translations "$TUNED-teacher/translations" \
  --output "$TUNED-corpus" --seed 1
resume=""; [ -d "$TUNED/ray/run" ] && resume="--resume"
# The architecture and dropout come from BASE; a fresh Adam warms up to about the learning rate BASE ended at.
# shellcheck disable=SC2086
python jobs/train_model.py --train "$TUNED-corpus" --valid "$WORK/val" --tokenizer "$WORK/tokenizer" \
  --output "$TUNED" --name run $resume --init-model "$BASE" \
  --label-smoothing 0.1 --lr 4e-4 --warmup 300 --max-tokens 4096 --max-epochs "${EPOCHS:-10}" --validate-every 0 \
  --keep-checkpoints 5 --average-last 5 --autocast bf16 --torch-threads 2 ${EXTRA:-}
