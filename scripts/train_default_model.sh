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
# A 3-layer, 256-dimensional Transformer with heavy dropout (0.3 on residuals and inside the feed-forward
# blocks, 0.1 on attention): the size that fits a 29k-pair corpus and a 2-core CPU budget.
# shellcheck disable=SC2086
python jobs/train_model.py --train "$WORK/train" --valid "$WORK/val" --tokenizer "$WORK/tokenizer" \
  --output "${OUT:-$WORK/model}" --name en-de ${RESUME:+--resume} \
  --arch transformer --layers 3 --d-model 256 --heads 4 --ff-dim 1024 --dropout 0.3 --attn-dropout 0.1 \
  --activation-dropout 0.3 --label-smoothing 0.1 --lr 1e-3 --warmup 1000 --max-tokens 4096 --max-epochs 38 \
  --validate-every 0 --patience 8 --keep-checkpoints 5 --average-last 5 --autocast bf16 --torch-threads 2 \
  ${EXTRA:-}
