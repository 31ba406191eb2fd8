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
#   RAY_AUTH_MODE=token and the token in ~/.ray/auth_token (or RAY_AUTH_TOKEN_PATH / RAY_AUTH_TOKEN)
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
echo "nightly $day: $input -> $output ($(date -u +%FT%TZ))"
# `ray job submit` waits for the job and exits non-zero when it fails.
# shellcheck disable=SC2086
if ! ray job submit --address "$RAY_ADDRESS" --submission-id "nightly-$day-$(date -u +%H%M%S)" \
    --working-dir . --runtime-env deploy/runtime_env.yaml \
    -- python jobs/translate_corpus.py --input "$input" --output "$output" ${EXTRA_ARGS:-}; then
  echo "nightly $day: FAILED; re-run 'scripts/nightly.sh $day' to finish it" >&2
  exit 1
fi
echo "nightly $day: done; report at ${output}report.json"
