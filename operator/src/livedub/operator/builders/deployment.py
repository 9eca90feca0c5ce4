"""The runtime Deployment of a pool.

Why the numbers: the readiness probe is ``/ready/streams`` (503 while models load, while draining, and
while the pod is full or marked for removal, so new connections go to pods with room), so a
pod that received SIGTERM leaves the Service at once; ``preStop`` sleeps a few seconds so kube-proxy
and ingress notice that before the process starts draining; the grace period covers preStop, the
runtime's own DRAIN_TIMEOUT_S and a margin, so in-flight fragments finish instead of being killed.
"""

from typing import Any

from livedub.contract import env as env_names
from livedub.operator import constants as c
from livedub.operator.builders.common import (
    child_labels,
    deployment_name,
    metadata,
    selector_labels,
    voices_configmap_name,
)
from livedub.operator.builders.quantity import whole_cpus
from livedub.operator.builders.voices import (
    Voice,
    fetch_init_containers,
    reference_audio_mounts,
    reference_audio_volumes,
    voices_hash,
)
from livedub.operator.spec import PoolSpec

PRESTOP_SLEEP_S = 5  # endpoint removal propagates in a few seconds on typical clusters
GRACE_MARGIN_S = 10
RUNTIME_UID = c.RUNTIME_UID
MODEL_CACHE_MOUNT = "/models"
#: Downward-API volume with the pod's annotations: the runtime stops taking new streams when the
#: operator marks the pod for removal (runtime server/placement.py).
PODINFO_DIR = "/etc/podinfo"
MAX_ENGINE_THREADS = 64  # the runtime's TTS_CPU_THREADS upper bound


def _env(spec: PoolSpec) -> list[dict[str, Any]]:
    env: dict[str, dict[str, Any]] = {}

    def put(name: str, value: object | None) -> None:
        if value is not None:
            env[name] = {"name": name, "value": str(value).lower() if isinstance(value, bool) else str(value)}

    put(env_names.HOST, "0.0.0.0")
    put(env_names.PORT, spec.runtime.port)
    put(env_names.LOG_LEVEL, spec.runtime.log_level)
    put(env_names.LOG_FORMAT, spec.runtime.log_format)
    put(env_names.ASR_ENGINE, spec.asr.engine)
    put(env_names.ASR_MODEL_SIZE, spec.asr.model_size)
    put(env_names.ASR_MODEL_PATH, spec.asr.model_path)
    put(env_names.ASR_DEVICE, spec.asr.device)
    put(env_names.ASR_COMPUTE_TYPE, spec.asr.compute_type)
    put(env_names.MT_ENGINE, spec.mt.engine)
    put(env_names.DEEPL_SERVER_URL, spec.mt.deepl_server_url)
    if spec.mt.deepl_secret_ref:
        ref = spec.mt.deepl_secret_ref
        env[env_names.DEEPL_AUTH_KEY] = {
            "name": env_names.DEEPL_AUTH_KEY,
            "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
        }
    # ONNX Runtime (Kokoro) sizes its thread pool from the *node's* cores, which oversubscribes a
    # CPU-limited pod (3 threads on 2 cores measured 1.69x slower). Whisper already has a fixed
    # ASR_CPU_THREADS (2), so only TTS is pinned to the pod's request.
    threads = whole_cpus(spec.resources.cpu)
    if spec.tts.device == "cpu" and threads is not None:
        put(env_names.TTS_CPU_THREADS, min(threads, MAX_ENGINE_THREADS))
    put(env_names.TTS_ENGINE, spec.tts.engine)
    put(env_names.TTS_DEVICE, spec.tts.device)
    put(env_names.TTS_MODEL_PATH, spec.tts.model_path)
    put(env_names.VOICES_FILE, c.VOICES_FILE)
    put(env_names.MAX_INFLIGHT, spec.runtime.max_inflight)
    # The pod's stream capacity and the refusal's retry-after are the autoscaler's model of the pod
    # (livedub.operator.scaling.decide): the runtime and the operator must use the same figures.
    put(env_names.MAX_POD_STREAMS, spec.streams_per_pod)
    # A full pod's streams each keep their window in flight: the runtime's pod-wide default (64) was
    # under that for a 60-stream GPU pod (60 x 3), so it refused compliant workers' fragments before
    # any stream was behind, and in flight per stream could never show the pod falling behind.
    window = spec.runtime.max_inflight or env_names.DEFAULT_STREAM_INFLIGHT
    put(env_names.MAX_POD_INFLIGHT, max(env_names.DEFAULT_POD_INFLIGHT, spec.streams_per_pod * window))
    put(env_names.STREAM_RETRY_AFTER_S, spec.autoscaling.stream_retry_after_seconds)
    put(env_names.POD_ANNOTATIONS_FILE, f"{PODINFO_DIR}/annotations")
    put(env_names.ARTIFACTS_ENABLED, spec.runtime.artifacts_enabled)
    put(env_names.DRAIN_TIMEOUT_S, spec.runtime.drain_timeout_seconds)
    put(env_names.HF_HOME, f"{MODEL_CACHE_MOUNT}/huggingface")
    put(env_names.AUTH_MODE, "required")
    put(env_names.AUTH_TOKENS_FILE, c.AUTH_TOKENS_FILE)
    # User-supplied env wins over ours: it is the documented escape hatch.
    for item in spec.env:
        env[str(item["name"])] = dict(item)
    return list(env.values())


def _resources(spec: PoolSpec) -> dict[str, Any]:
    res = spec.resources
    requests: dict[str, str] = {"cpu": res.cpu, "memory": res.memory}
    limits: dict[str, str] = {"memory": res.memory}
    if res.gpu:
        # Extended resources must have requests == limits; setting limits alone implies the request.
        limits[res.gpu_resource_name] = str(res.gpu)
    return {"requests": requests, "limits": limits}


def _volumes(pool: str, spec: PoolSpec, voices: list[Voice]) -> tuple[list[Any], list[Any]]:
    cache: dict[str, Any] = (
        {"persistentVolumeClaim": {"claimName": spec.model_cache.claim_name}}
        if spec.model_cache.claim_name
        else {"emptyDir": {}}
    )
    volumes: list[dict[str, Any]] = [
        {"name": "voices", "configMap": {"name": voices_configmap_name(pool)}},
        {"name": "model-cache", **cache},
        {"name": "tmp", "emptyDir": {}},
        {
            "name": "podinfo",
            "downwardAPI": {"items": [{"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]},
        },
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "podinfo", "mountPath": PODINFO_DIR, "readOnly": True},
        {"name": "voices", "mountPath": c.VOICES_DIR, "readOnly": True},
        {"name": "model-cache", "mountPath": MODEL_CACHE_MOUNT},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    ref = spec.auth_tokens_secret_ref
    items = [{"key": ref.key, "path": "tokens"}]
    volumes.append({"name": "auth-tokens", "secret": {"secretName": ref.name, "items": items}})
    mounts.append({"name": "auth-tokens", "mountPath": "/etc/livedub/auth", "readOnly": True})
    audio = reference_audio_volumes(voices)
    return volumes + audio, mounts + reference_audio_mounts(audio)


def _probe(path: str, port: int, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def build_deployment(pool: str, namespace: str, spec: PoolSpec, voices: list[Voice], replicas: int) -> dict[str, Any]:
    port = spec.runtime.port
    volumes, mounts = _volumes(pool, spec, voices)
    container: dict[str, Any] = {
        "name": "runtime",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["livedub", "serve", "--host", "0.0.0.0", "--port", str(port)],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": _env(spec),
        "resources": _resources(spec),
        "volumeMounts": mounts,
        # Model loading can take minutes on first start (download into the cache): the startup probe
        # allows 10 minutes before liveness takes over.
        "startupProbe": _probe("/health", port, 10, 60),
        "livenessProbe": _probe("/health", port, 10, 3),
        # Ready = takes new streams (models loaded, not draining, below MAX_POD_STREAMS, not leaving):
        # the Service sends new connections to pods with room; live streams on a full pod go on.
        "readinessProbe": _probe("/ready/streams", port, 5, 1),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SLEEP_S)]}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": RUNTIME_UID,
        },
    }
    pod_labels = child_labels(pool, "runtime")
    annotations = {
        c.ANNOTATION_SCRAPE: "true",
        c.ANNOTATION_SCRAPE_PORT: str(port),
        c.ANNOTATION_SCRAPE_PATH: "/metrics",
        c.ANNOTATION_VOICES_HASH: voices_hash(voices),
    }
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "initContainers": fetch_init_containers(voices),
        "volumes": volumes,
        "terminationGracePeriodSeconds": (spec.runtime.drain_timeout_seconds + PRESTOP_SLEEP_S + GRACE_MARGIN_S),
        "securityContext": {"fsGroup": RUNTIME_UID, "seccompProfile": {"type": "RuntimeDefault"}},
        "nodeSelector": dict(spec.node_selector),
        "tolerations": [dict(t) for t in spec.tolerations],
        "imagePullSecrets": [{"name": n} for n in spec.image_pull_secrets],
        "enableServiceLinks": False,
    }
    if spec.affinity:
        pod_spec["affinity"] = dict(spec.affinity)
    if spec.topology_spread_constraints:
        # Without a selector a constraint counts every pod of the namespace; ours counts the pool's.
        selector = {"matchLabels": selector_labels(pool)}
        pod_spec["topologySpreadConstraints"] = [
            {"labelSelector": selector, **constraint} for constraint in spec.topology_spread_constraints
        ]
    if spec.priority_class_name:
        pod_spec["priorityClassName"] = spec.priority_class_name
    if spec.runtime_class_name:
        pod_spec["runtimeClassName"] = spec.runtime_class_name
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(deployment_name(pool), namespace, child_labels(pool, "runtime")),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(pool)},
            # Surge, never reduce: a rollout must not cut live streams below the current capacity.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": pod_labels, "annotations": annotations}, "spec": pod_spec},
        },
    }
