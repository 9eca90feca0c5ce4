#!/usr/bin/env bash
# Regenerate constraints.txt: resolve the production runtime and the development tools afresh (each
# in a throw-away virtualenv, from the ranges in the pyproject files), then write the union of both
# environments' exact versions. Run after changing a dependency range; commit the result.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
empty="$WORK/empty.txt"; : >"$empty"
freeze() { "$1/bin/python" -m pip freeze --exclude-editable | grep -v '^livedub' || true; }
for env in production dev; do
  python3 -m venv "$WORK/$env"
  "$WORK/$env/bin/python" -m pip install -q --upgrade pip
done
# Unconstrained resolution: install.sh would pin to the old file, so point it at an empty one.
sed "s#^CONSTRAINTS=.*#CONSTRAINTS=$empty#" "$ROOT/hack/install.sh" >"$WORK/install.sh"
cp "$WORK/install.sh" "$ROOT/hack/.install-unpinned.sh"
trap 'rm -rf "$WORK" "$ROOT/hack/.install-unpinned.sh"' EXIT
bash "$ROOT/hack/.install-unpinned.sh" "$WORK/production" production
bash "$ROOT/hack/.install-unpinned.sh" "$WORK/dev" runtime llm operator dev
{
  echo "# Exact versions for every environment of the project: local set-up, CI and both images install"
  echo "# through hack/install.sh (\`pip install -c constraints.txt\`). Regenerate with hack/lock.sh; the"
  echo "# union of the production runtime's environment and the development tools' one."
  # A local build (torch's +cpu wheel on this machine) is pinned by its public version, so a CUDA
  # image takes the registry's build of the same release.
  { freeze "$WORK/production"; freeze "$WORK/dev"; } | sed -E 's/\+[a-z0-9.]+$//' | sort -f -u
} >"$ROOT/constraints.txt"
echo ">> wrote constraints.txt ($(grep -vc '^#' "$ROOT/constraints.txt") pins)"
