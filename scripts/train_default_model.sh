#!/usr/bin/env bash
# Reproduces the shipped model models/multi30k-en-de from the Multi30k corpus:
# text -> Parquet -> SentencePiece -> Ray Train. Run from the repository root.
#   DATA   folder with {train,val,test_2016_flickr}.{en,de}.gz (default ../shared/data/multi30k)
#   WORK   scratch folder (default work/multi30k)
#   EXTRA  extra flags for jobs/train_model.py (e.g. "--num-workers 4 --use-gpu")
set -euo pipefail
DATA=${DATA:-../shared/data/multi30k}
WORK=${WORK:-work/multi30k}
if [ -z "${RESUME:-}" ]; then  # RESUME=1 continues the run with the same data and tokenizer
  for split in train val test_2016_flickr; do
    python jobs/prepare_corpus.py --source "$DATA/$split.en.gz" --target "$DATA/$split.de.gz" \
      --output "$WORK/$split" --id-prefix "$split" --metadata lang_pair=en-de --overwrite
  done
  python jobs/train_tokenizer.py --input "$WORK/train" --output "$WORK/tokenizer" --vocab-size 8000
fi
# A small Transformer with a high learning rate, heavy dropout and many updates: what works best on a
# corpus of this size (cf. the "Transformer-tiny" baselines of Wu et al., 2021, on Multi30k).
# shellcheck disable=SC2086
python jobs/train_model.py --train "$WORK/train" --valid "$WORK/val" --tokenizer "$WORK/tokenizer" \
  --output "${OUT:-$WORK/model-tiny}" --name en-de ${RESUME:+--resume} \
  --arch transformer --layers 4 --d-model 128 --heads 4 --ff-dim 256 --dropout 0.3 \
  --label-smoothing 0.1 --lr 5e-3 --warmup 2000 --max-tokens 4096 --max-steps 4600 --max-epochs 100 \
  --validate-every 0 --patience 10 --keep-checkpoints 10 --average-last 10 --autocast fp32 --torch-threads 2 \
  ${EXTRA:-}
