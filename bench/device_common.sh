# Sourced by bench/gpu_device.sh and bench/gpu_xtts.sh: what a lent GPU machine needs and cannot fetch.

# download_wheels PYTHON PYVER DEST SPEC...: CPython wheels for manylinux x86-64, no dependencies.
download_wheels() {
  local py=$1 ver=$2 dest=$3
  shift 3
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$ver" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$dest" "$@"
}

# link_runtime DIR: DIR/runtime importable as livedub.runtime through /tmp/pkg, nothing installed.
link_runtime() {
  mkdir -p /tmp/pkg/livedub
  ln -sfn "$1/runtime" /tmp/pkg/livedub/runtime
}
