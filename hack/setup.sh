#!/usr/bin/env bash
# Developer/CI set-up: what `make run` and `make test` call. Idempotent.
#   .venv             runtime (embedded default) + its [llm] extra + operator + dev tools, all editable
#                     (the extra so the LLM translator's tests run in CI; the runtime image stays without it)
#   .venv-production  the production runtime (XTTS, torch, DeepL) + dev tools: the XTTS tests run here
# Both come from hack/install.sh, the same definition the Dockerfiles use.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PRODUCTION_VENV=${PRODUCTION_VENV:-.venv-production}
case "${1:-all}" in
  main) bash hack/install.sh --editable "$VENV" runtime llm operator dev ;;
  production) bash hack/install.sh --editable "$PRODUCTION_VENV" production dev ;;
  all)
    bash hack/install.sh --editable "$VENV" runtime llm operator dev
    bash hack/install.sh --editable "$PRODUCTION_VENV" production dev
    ;;
  *) echo "usage: $0 [main|production|all]" >&2; exit 2 ;;
esac
