#!/usr/bin/env bash
# The seed architectures of the lineage, trained by the same job on the same data and tokenizer as
# the shipped Transformer, then evaluated on test_2016_flickr; results in bench/results/architectures.json.
#   Sutskever et al. 2014: LSTM encoder-decoder, no attention, source reversed (and not, for the effect)
#   Bahdanau et al. 2014:  GRU, bidirectional encoder, additive attention
#   Luong et al. 2015:     LSTM, bidirectional encoder, multiplicative (general) attention,
#                          without and with input feeding
#   Bengio et al. 2015:    the Luong model trained with scheduled sampling (inverse sigmoid decay)
# Run scripts/train_default_model.sh first (it prepares the data and the tokenizer); the Transformer
# row of the table is that model.
#   ROWS     the rows to train (default: all), e.g. ROWS="lstm-luong lstm-luong-feed"
#   EPOCHS   training budget per row (default 3: the like-for-like column of docs/results.md is the
#            greedy val BLEU after the epochs every row has; 2-core CPU rows take 30-70 minutes at 3)
#   THREADS  torch threads per run (default 2); EXTRA more flags (e.g. "--num-workers 4 --use-gpu")
#   HARDWARE how bench/architectures.py describes the machine in the table; TABLE=0 skips the table
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-work/multi30k}
EPOCHS=${EPOCHS:-3}
THREADS=${THREADS:-2}
ROWS=${ROWS:-lstm-reversed-noattn lstm-noattn gru-bahdanau lstm-luong lstm-luong-feed lstm-luong-ss}
common=(--train "$WORK/train" --valid "$WORK/val" --tokenizer "$WORK/tokenizer" --arch rnn
        --emb-dim 256 --dropout 0.3 --label-smoothing 0.1 --lr 1e-3 --warmup 500 --max-tokens 4096
        --max-epochs "$EPOCHS" --validate-every 0 --patience 3 --keep-checkpoints 3 --autocast fp32
        --torch-threads "$THREADS")
luong=(--cell lstm --attention luong_general --layers 2 --hidden-dim 256)
for name in $ROWS; do
  case $name in
    lstm-reversed-noattn) flags=(--cell lstm --attention none --bidirectional=false --reverse-source --layers 2
                                 --hidden-dim 512) ;;
    lstm-noattn) flags=(--cell lstm --attention none --bidirectional=false --layers 2 --hidden-dim 512) ;;
    gru-bahdanau) flags=(--cell gru --attention bahdanau --layers 1 --hidden-dim 256) ;;
    lstm-luong) flags=("${luong[@]}") ;;
    lstm-luong-feed) flags=("${luong[@]}" --input-feeding) ;;
    # Teacher forcing decays by an inverse sigmoid from 0.99 to about 0.7 over the ~385 updates of 3 epochs.
    lstm-luong-ss) flags=("${luong[@]}" --scheduled-sampling inverse_sigmoid --ss-k 100) ;;
    *) echo "unknown row $name" >&2; exit 2 ;;
  esac
  RES=""; [ -d "$WORK/arch/$name/ray/$name" ] && RES="--resume"
  # shellcheck disable=SC2086
  python jobs/train_model.py "${common[@]}" --output "$WORK/arch/$name" --name "$name" $RES "${flags[@]}" ${EXTRA:-}
done
# Only the rows trained here are measured again; the table keeps the others as they were. TABLE=0
# leaves the table alone (for runs side by side, which would otherwise both rewrite it).
[ "${TABLE:-1}" = 0 ] || python bench/architectures.py --work "$WORK" --rows "${ROWS// /,}" ${HARDWARE:+--hardware "$HARDWARE"}
