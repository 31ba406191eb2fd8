#!/usr/bin/env bash
# The seed architectures of the lineage, trained by the same job on the same data and tokenizer as
# the shipped Transformer, then evaluated on test_2016_flickr; results in bench/results/architectures.json.
#   Sutskever et al. 2014: LSTM encoder-decoder, no attention, source reversed
#   Bahdanau et al. 2014:  GRU, bidirectional encoder, additive attention
#   Luong et al. 2015:     LSTM, bidirectional encoder, multiplicative (general) attention
# Run scripts/train_default_model.sh first (it prepares the data and the tokenizer); the Transformer
# row of the table is that model. EPOCHS and EXTRA (e.g. "--num-workers 4 --use-gpu") are optional.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-work/multi30k}
EPOCHS=${EPOCHS:-12}
common=(--train "$WORK/train" --valid "$WORK/val" --tokenizer "$WORK/tokenizer" --arch rnn
        --emb-dim 256 --dropout 0.3 --label-smoothing 0.1 --lr 1e-3 --warmup 500 --max-tokens 4096
        --max-epochs "$EPOCHS" --validate-every 0 --patience 3 --keep-checkpoints 3 --autocast bf16
        --torch-threads 2)
train() {  # name, flags...
  local name=$1; shift
  # shellcheck disable=SC2086
  python jobs/train_model.py "${common[@]}" --output "$WORK/arch/$name" --name "$name" "$@" ${EXTRA:-}
}
train lstm-reversed-noattn --cell lstm --attention none --bidirectional=false --reverse-source --layers 2 --hidden-dim 512
train gru-bahdanau --cell gru --attention bahdanau --layers 1 --hidden-dim 256
train lstm-luong --cell lstm --attention luong_general --layers 2 --hidden-dim 256
python bench/architectures.py --work "$WORK"
