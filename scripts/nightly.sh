#!/usr/bin/env bash
# Submit the nightly translation of one date partition to a Ray cluster, wait, and fail loudly.
#
#   scripts/nightly.sh [YYYY-MM-DD]        (default: yesterday, UTC)
#
# Environment:
#   RAY_ADDRESS      Jobs API address, e.g. http://127.0.0.1:8265 (after `ray dashboard cluster.yaml`)
#   INPUT_PREFIX     e.g. s3://my-bucket/docs          -> reads  $INPUT_PREFIX/date=YYYY-MM-DD/
#   OUTPUT_PREFIX    e.g. s3://my-bucket/translations  -> writes $OUTPUT_PREFIX/date=YYYY-MM-DD/
#   EXTRA_ARGS       more flags for jobs/translate_corpus.py (e.g. "--max-actors 8")
#   RAY_AUTH_MODE    token unless set: Ray 2.60 clusters require a token (docs/operations.md), and
#                    `ray job submit` sends it only in this mode; the token comes from RAY_AUTH_TOKEN,
#                    RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token (checked before submitting; never printed)
#   DRY_RUN=1        print what would be submitted, and the authentication it would send, and exit
#
# A failed night is finished by running the same command again (the job resumes into the same
# output). Example crontab line (01:30 UTC every day), from the repository root:
#   30 1 * * * cd /opt/nmt-batch && RAY_ADDRESS=http://127.0.0.1:8265 INPUT_PREFIX=s3://my-bucket/docs \
#     OUTPUT_PREFIX=s3://my-bucket/translations scripts/nightly.sh >> /var/log/nmt-nightly.log 2>&1 \
#     || mail -s "nightly translation FAILED" oncall@example.com < /var/log/nmt-nightly.log
set -euo pipefail
cd "$(dirname "$0")/.."
day=${1:-$(date -u -d yesterday +%F)}
if ! [[ $day =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]]; then
  echo "nightly: expected a date YYYY-MM-DD, got '$day'" >&2
  exit 2
fi
: "${RAY_ADDRESS:?set RAY_ADDRESS to the Jobs API of the cluster (e.g. http://127.0.0.1:8265)}"
: "${INPUT_PREFIX:?set INPUT_PREFIX (e.g. s3://my-bucket/docs)}"
: "${OUTPUT_PREFIX:?set OUTPUT_PREFIX (e.g. s3://my-bucket/translations)}"
input="${INPUT_PREFIX%/}/date=$day/"
output="${OUTPUT_PREFIX%/}/date=$day/"
# Exported: `ray job submit` below is the process that must send the token.
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
auth="RAY_AUTH_MODE=$RAY_AUTH_MODE"
if [[ $RAY_AUTH_MODE == token ]]; then
  token_file=${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}
  if [[ -n ${RAY_AUTH_TOKEN:-} ]]; then
    auth+=", token from RAY_AUTH_TOKEN (${#RAY_AUTH_TOKEN} characters)"
  elif [[ -s $token_file ]]; then
    auth+=", token from $token_file"
  else
    echo "nightly: RAY_AUTH_MODE=token but no token: set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH, or put the" \
      "cluster's token in ~/.ray/auth_token (docs/operations.md)" >&2
    exit 2
  fi
fi
echo "nightly $day: $input -> $output ($(date -u +%FT%TZ); $auth)"
submit=(ray job submit --address "$RAY_ADDRESS" --submission-id "nightly-$day-$(date -u +%H%M%S)"
        --working-dir . --runtime-env deploy/runtime_env.yaml
        -- python jobs/translate_corpus.py --input "$input" --output "$output")
# shellcheck disable=SC2206
submit+=(${EXTRA_ARGS:-})
if [[ ${DRY_RUN:-} == 1 ]]; then
  echo "nightly $day: dry run: ${submit[*]}"
  exit 0
fi
# `ray job submit` waits for the job and exits non-zero when it fails.
if ! "${submit[@]}"; then
  echo "nightly $day: FAILED; re-run 'scripts/nightly.sh $day' to finish it" >&2
  exit 1
fi
echo "nightly $day: done; report at ${output}report.json"
