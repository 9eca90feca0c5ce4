#!/usr/bin/env bash
# End-to-end on a throwaway kind cluster (needs Docker, kind, kubectl, helm on PATH).
#
#   hack/kind-e2e.sh            # create cluster, build + load images, install, run tests/e2e
#   KEEP=1 hack/kind-e2e.sh     # keep the cluster afterwards (delete: kind delete cluster --name livedub-e2e)
#   SKIP_RUNTIME_IMAGE=1 ...    # do not build the (large) runtime image: tests then check the
#                               # operator's objects and status, not that pods become Ready
#
# kind has no GPUs: the pool under test is a CPU pool (gpu: 0) built from the CPU image variant.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${CLUSTER:-livedub-e2e}"
NAMESPACE="${NAMESPACE:-livedub-e2e}"
OPERATOR_IMAGE="livedub-operator:e2e"
RUNTIME_IMAGE="livedub-runtime:e2e-cpu"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 2; }
done

cleanup() {
  if [[ "${KEEP:-0}" != "1" ]]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
export KUBECONFIG="$(mktemp)"
kind get kubeconfig --name "$CLUSTER" > "$KUBECONFIG"

echo "--- building images"
docker build -f "$ROOT/deploy/Dockerfile.operator" -t "$OPERATOR_IMAGE" "$ROOT"
kind load docker-image "$OPERATOR_IMAGE" --name "$CLUSTER"
if [[ "${SKIP_RUNTIME_IMAGE:-0}" != "1" ]]; then
  docker build -f "$ROOT/deploy/Dockerfile.runtime" --build-arg BASE_IMAGE=ubuntu:24.04 \
    --build-arg EXTRAS=deepl -t "$RUNTIME_IMAGE" "$ROOT"
  kind load docker-image "$RUNTIME_IMAGE" --name "$CLUSTER"
  export LIVEDUB_E2E_WAIT_READY=1
fi

echo "--- installing the chart"
"$PYTHON" "$ROOT/hack/sync-chart-crds.py" --check
helm upgrade --install livedub "$ROOT/charts/livedub-operator" \
  --namespace livedub-system --create-namespace \
  --set image.repository="${OPERATOR_IMAGE%:*}" --set image.tag="${OPERATOR_IMAGE#*:}" \
  --set image.pullPolicy=Never --set operator.autoscaleIntervalSeconds=5 --wait --timeout 180s

kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -

echo "--- running tests/e2e"
LIVEDUB_E2E=1 LIVEDUB_E2E_NAMESPACE="$NAMESPACE" LIVEDUB_E2E_IMAGE="$RUNTIME_IMAGE" \
  "$PYTHON" -m pytest "$ROOT/tests/e2e" -v -p no:cacheprovider
