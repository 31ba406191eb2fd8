#!/usr/bin/env bash
# Installs the project into the current Python environment.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --dev    plus test tools (pytest, moto server, ruff)
#
# torch is installed first, and only when missing: a bare `pip install torch`
# resolves to the newest CUDA build (several GB). TORCH_SPEC picks the build:
#   default            torch==2.13.0 (the CPU wheel on our CI machines)
#   GPU machines       keep your CUDA torch (it is left alone), or e.g.
#                      TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu128"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
if ! "$PY" -c "import torch" 2>/dev/null; then
  # shellcheck disable=SC2086
  "$PY" -m pip install -q ${TORCH_SPEC:-torch==2.13.0}
fi
"$PY" -m pip install -q -e ".${extras}"
