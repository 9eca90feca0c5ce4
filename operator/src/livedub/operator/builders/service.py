"""The Socket.IO Service and the PodDisruptionBudget of a pool."""

from typing import Any

from livedub.operator.builders.common import child_labels, metadata, pdb_name, selector_labels, service_name
from livedub.operator.spec import PoolSpec

# Affinity is off by default (issue 12): websocket clients keep one connection and need none, and
# ClientIP affinity pinned every new stream of a worker to the pod it first reached, so new pods got
# no load. Long-polling clients do need one pod per session: behind an ingress, use its cookie
# affinity (docs/operator.md); ClientIP stays available, for three hours (a broadcast).
AFFINITY_TIMEOUT_S = 10800


def build_service(pool: str, namespace: str, spec: PoolSpec) -> dict[str, Any]:
    meta = metadata(service_name(pool), namespace, child_labels(pool, "runtime"))
    if spec.service.annotations:
        meta["annotations"] = dict(spec.service.annotations)
    svc_spec: dict[str, Any] = {
        "type": spec.service.type,
        "selector": selector_labels(pool),
        "ports": [{"name": "http", "port": spec.runtime.port, "targetPort": "http", "protocol": "TCP"}],
        "sessionAffinity": spec.service.session_affinity,
    }
    if spec.service.session_affinity == "ClientIP":
        svc_spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": AFFINITY_TIMEOUT_S}}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": svc_spec}


def build_pdb(pool: str, namespace: str, spec: PoolSpec) -> dict[str, Any] | None:
    """A PDB so node drains evict runtime pods one at a time (each drains its streams first)."""
    if not spec.pod_disruption_budget.enabled:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(pdb_name(pool), namespace, child_labels(pool, "runtime")),
        "spec": {
            "maxUnavailable": spec.pod_disruption_budget.max_unavailable,
            "selector": {"matchLabels": selector_labels(pool)},
        },
    }
