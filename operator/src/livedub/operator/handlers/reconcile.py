"""Bring one valid pool's children in line with its spec and its VoiceProfiles.

Called from the pool's create/update/resume handler, from the periodic tick (drift repair), and
when a VoiceProfile the pool uses changes. Idempotent: with nothing changed it only reads.
"""

import logging
from dataclasses import dataclass, field
from typing import Any

import kopf

from livedub.operator import client as api
from livedub.operator import telemetry
from livedub.operator.builders.deployment import build_deployment
from livedub.operator.builders.service import build_pdb, build_service
from livedub.operator.builders.voices import Voice, build_voices_configmap
from livedub.operator.client import Client
from livedub.operator.errors import InvalidSpecError
from livedub.operator.handlers.children import Outcome, apply_child
from livedub.operator.spec import PoolSpec, parse_voice_spec

log = logging.getLogger(__name__)


@dataclass
class ReconcileResult:
    deployment: dict[str, Any]
    voices: list[str] = field(default_factory=list)
    missing_voices: list[str] = field(default_factory=list)
    changed: dict[str, Outcome] = field(default_factory=dict)
    # Why the model-cache claim cannot serve every replica (None: fine, or no claim).
    cache_problem: str | None = None

    @property
    def replicas(self) -> int:
        return int((self.deployment.get("spec") or {}).get("replicas") or 0)

    @property
    def ready_replicas(self) -> int:
        return int((self.deployment.get("status") or {}).get("readyReplicas") or 0)


async def resolve_voices(client: Client, namespace: str, names: list[str]) -> tuple[list[Voice], list[str]]:
    """Fetch the named VoiceProfiles; missing or invalid ones are reported, not fatal."""
    voices: list[Voice] = []
    missing: list[str] = []
    for name in sorted(set(names)):
        obj = await client.get(api.VOICES, namespace, name)
        if obj is None or obj.get("metadata", {}).get("deletionTimestamp"):
            missing.append(name)
            continue
        try:
            voices.append(Voice(name=name, spec=parse_voice_spec(obj.get("spec"))))
        except InvalidSpecError as exc:
            log.warning("VoiceProfile %s/%s skipped: %s", namespace, name, exc)
            missing.append(name)
    return voices, missing


#: Access modes every replica of a pool can mount, on whichever node it lands.
SHARED_ACCESS_MODES = frozenset({"ReadWriteMany", "ReadOnlyMany"})


async def check_model_cache(client: Client, namespace: str, spec: PoolSpec) -> str | None:
    """A pool that may run more than one pod needs a claim they can all mount (RWX, or a pre-seeded ROX).

    A ReadWriteOnce claim mounts on one node only: a second pod scheduled elsewhere would hang in
    ContainerCreating, which looks like a slow start, not like the cause. Said here, in status.
    """
    claim = spec.model_cache.claim_name
    if not claim or spec.max_replicas <= 1:
        return None
    pvc = await client.get(api.PVCS, namespace, claim)
    if pvc is None:
        return f"modelCache.claimName {claim!r}: no such PersistentVolumeClaim"
    modes = set((pvc.get("status") or {}).get("accessModes") or (pvc.get("spec") or {}).get("accessModes") or [])
    if modes & SHARED_ACCESS_MODES:
        return None
    return (
        f"modelCache.claimName {claim!r} has access modes {sorted(modes)}, but maxReplicas is {spec.max_replicas}: "
        "pods on other nodes cannot mount it; use ReadWriteMany, or a pre-seeded ReadOnlyMany claim"
    )


def replicas_for(spec: PoolSpec, current: int | None) -> int:
    """The Deployment's replicas: kept as the autoscaler left them, within the pool's bounds."""
    if spec.autoscaling.mode == "external" and spec.replicas is not None:
        return int(spec.replicas)
    if current is None:
        return int(spec.min_replicas)
    return int(max(spec.min_replicas, min(spec.max_replicas, current)))


async def reconcile_children(client: Client, body: kopf.Body, spec: PoolSpec) -> ReconcileResult:
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    voices, missing = await resolve_voices(client, namespace, spec.voice_profiles)
    changed: dict[str, Outcome] = {}

    configmap = build_voices_configmap(name, namespace, voices)
    outcome, _ = await apply_child(client, api.CONFIGMAPS, configmap, body)
    changed["ConfigMap"] = outcome
    outcome, _ = await apply_child(client, api.SERVICES, build_service(name, namespace, spec), body)
    changed["Service"] = outcome
    pdb = build_pdb(name, namespace, spec)
    if pdb is not None:
        outcome, _ = await apply_child(client, api.PDBS, pdb, body)
        changed["PodDisruptionBudget"] = outcome
    else:
        await client.delete(api.PDBS, namespace, name)

    existing = await client.get(api.DEPLOYMENTS, namespace, name)
    current = None if existing is None else int((existing.get("spec") or {}).get("replicas") or 0)
    manifest = build_deployment(name, namespace, spec, voices, replicas_for(spec, current))
    outcome, deployment = await apply_child(client, api.DEPLOYMENTS, manifest, body)
    changed["Deployment"] = outcome
    telemetry.record_children(changed)
    return ReconcileResult(
        deployment=deployment,
        voices=[v.name for v in voices],
        missing_voices=missing,
        changed=changed,
        cache_problem=await check_model_cache(client, namespace, spec),
    )
