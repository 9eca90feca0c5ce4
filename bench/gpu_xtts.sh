#!/usr/bin/env bash
# bench.gpu_xtts (XTTS v2 engine with TTS_DEVICE=cuda, tiny model) on a lent GPU machine that reaches no
# registry: the wheels the machine lacks travel in .devxtts/ (ignored by git) with the working tree.
#
#   bash bench/gpu_xtts.sh pack          # here: download the cp312 manylinux wheels into .devxtts/wheels
#   bash bench/gpu_xtts.sh [ARGS]        # there (run's carry: [".devxtts"]): install, link, check on cuda
#   bash bench/gpu_xtts.sh run [ARGS]    # the same; ARGS go to bench.gpu_xtts (e.g. --device cpu)
#
# The machine brings torch/torchaudio (CUDA builds), transformers, numpy, scipy, numba, tokenizers,
# huggingface-hub, einops, ...; what it lacks is listed in WHEELS. A wheel whose distribution the machine
# already has is skipped, so nothing it has is shadowed. torchcodec is there only for coqui-tts's
# presence check at `import TTS` (torch >= 2.9); nothing on XTTS's inference path imports it.
# Results: ${OUT:-bench/results}/gpu_xtts.json and .log; the exit status is the check's (0 only if all passed).
set -euo pipefail
BUNDLE=${BUNDLE:-.devxtts}
SITE=${SITE:-/tmp/site}
PY=${PY:-python3}
source "$(dirname "${BASH_SOURCE[0]}")/device_common.sh"

# Pure-python wheels, then compiled ones (cp312 on the device; PYVER=3.11 packs a local dry run).
WHEELS=(
  coqui-tts==0.28.0 coqpit-config==0.2.5 coqui-tts-trainer==0.4.0 librosa==0.11.0 anyascii==0.3.3
  num2words==0.5.14 ko-speech-tools==0.1.0 pycparser==3.12 pydantic==2.14.4 annotated-types==0.8.0
  typing-inspection==0.4.5 pydantic-settings==2.16.3 python-dotenv==1.2.4
  soundfile==0.14.0 cffi==2.1.1 pydantic-core==2.50.5 soxr==1.1.0 torchcodec==0.11.0
)
# Packages the machine has but perhaps too old for the wheels above (pydantic 2.14 needs typing-extensions
# 4.16): the release in fallback/ is installed only when the machine's does not meet the requirement.
FALLBACK=("typing-extensions>=4.16.0")
FALLBACK_PINS=(typing-extensions==4.16.0)

pack() {
  local dest=${1:-$BUNDLE/wheels} ver=${PYVER:-3.12}
  rm -rf "$dest" "$dest/../fallback"
  mkdir -p "$dest"
  download_wheels "$PY" "$ver" "$dest" "${WHEELS[@]}"
  "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$dest/../fallback" "${FALLBACK_PINS[@]}"
  ls "$dest" "$dest/../fallback"
  du -sh "$dest" "$dest/../fallback"
}

# Exit 0 when the machine's own installed distribution meets the requirement $1.
_meets() {
  "$PY" - "$1" <<'EOF'
import importlib.metadata as md
import sys

from packaging.requirements import Requirement

req = Requirement(sys.argv[1])
try:
    have = md.version(req.name)
except md.PackageNotFoundError:
    sys.exit(1)
sys.exit(0 if req.specifier.contains(have, prereleases=True) else 1)
EOF
}

# After installing: is every requirement of what went into $SITE met by $SITE + the machine? (informative)
_report_unmet() {
  PYTHONPATH=$SITE "$PY" - "$SITE" <<'EOF'
import importlib.metadata as md
import sys

from packaging.requirements import Requirement

unmet = []
for dist in md.distributions(path=[sys.argv[1]]):
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            have = md.version(req.name)
        except md.PackageNotFoundError:
            have = None
        if have is None or not req.specifier.contains(have, prereleases=True):
            unmet.append(f"  {dist.metadata['Name']} requires {req}, found {have}")
print("requirements of the installed wheels not met (XTTS inference imports few of them):")
print("\n".join(sorted(unmet)) or "  none")
EOF
}

install() {
  local wheels=() whl dist have req
  for whl in "$BUNDLE"/wheels/*.whl; do
    dist=$(basename "$whl" | cut -d- -f1)
    if have=$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$dist" 2>/dev/null); then
      echo "machine has $dist $have: bundled $(basename "$whl") not installed"
    else
      wheels+=("$whl")
    fi
  done
  for req in "${FALLBACK[@]}"; do
    dist=$(echo "$req" | sed 's/[<>=!~].*//' | tr - _)
    if _meets "$req"; then
      echo "machine meets $req"
    else
      echo "machine does not meet $req: bundled $dist installed"
      wheels+=("$BUNDLE"/fallback/"$dist"-*.whl)
    fi
  done
  if [ ${#wheels[@]} -gt 0 ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "${wheels[@]}"
  fi
  echo "installed ${#wheels[@]} wheels into $SITE"
  _report_unmet || true
}

run() {
  [ -f "$SITE/.gpu_xtts" ] || { install && mkdir -p "$SITE" && touch "$SITE/.gpu_xtts"; }
  link_runtime "$PWD"
  export PYTHONPATH=$SITE:/tmp/pkg:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
  export MPLCONFIGDIR=/tmp/mplconfig NUMBA_CACHE_DIR=/tmp/numba-cache TTS_DEVICE=${TTS_DEVICE:-cuda}
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv || true
  local out=${OUT:-bench/results} rc=0
  mkdir -p "$out"
  "$PY" -m bench.gpu_xtts --device "$TTS_DEVICE" --out "$out/gpu_xtts.json" "$@" 2>&1 | tee "$out/gpu_xtts.log" ||
    rc=${PIPESTATUS[0]}
  echo "bench.gpu_xtts exit status $rc (log: $out/gpu_xtts.log)"
  return "$rc"
}

case "${1:-run}" in
  pack | install | run)
    cmd=${1:-run}
    shift || true
    "$cmd" "$@"
    ;;
  *) run "$@" ;;
esac
