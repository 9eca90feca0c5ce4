"""Builders: spec in, manifest out. Every manifest also passes kubernetes-validate --strict, so a
typo in a field name fails here, not on a cluster."""

import json
from typing import Any

import kubernetes_validate
import pytest

from livedub.operator.builders.common import label_selector_string, selector_labels
from livedub.operator.builders.deployment import build_deployment
from livedub.operator.builders.service import build_pdb, build_service
from livedub.operator.builders.voices import (
    FETCHED_DIR,
    MOUNTED_DIR,
    Voice,
    build_voices_configmap,
    voices_hash,
)
from livedub.operator.spec import PoolSpec, parse_pool_spec, parse_voice_spec

K8S_VERSION = "1.30.0"


def strict(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def voices() -> list[Voice]:
    return [
        Voice(
            "ana",
            parse_voice_spec(
                {
                    "language": "es",
                    "gender": "female",
                    "referenceAudio": {"configMapKeyRef": {"name": "audio", "key": "ana.wav"}},
                }
            ),
        ),
        Voice(
            "bob",
            parse_voice_spec(
                {"language": "fr", "gender": "male", "referenceAudio": {"url": "https://example.com/bob.wav"}}
            ),
        ),
        Voice(
            "cy",
            parse_voice_spec(
                {
                    "language": "es",
                    "gender": "neutral",
                    "referenceAudio": {"secretKeyRef": {"name": "private", "key": "cy"}},
                }
            ),
        ),
        Voice("dee", parse_voice_spec({"language": "es", "gender": "female"})),
    ]


TOKENS = {"authTokensSecretRef": {"name": "workers"}}
MINIMAL = parse_pool_spec(TOKENS)
FULL = parse_pool_spec(
    {
        "image": "registry.example/livedub:1",
        "mt": {"engine": "deepl", "deeplSecretRef": {"name": "deepl"}},
        "resources": {"gpu": 2, "cpu": "8", "memory": "32Gi"},
        "nodeSelector": {"gpu": "a100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "live",
        "runtimeClassName": "nvidia",
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "news"}},
                        },
                    }
                ]
            }
        },
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"},
            {
                "maxSkew": 2,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"tier": "gpu"}},
            },
        ],
        "imagePullSecrets": ["regcred"],
        "authTokensSecretRef": {"name": "workers"},
        "modelCache": {"claimName": "models"},
        "runtime": {"maxInflight": 8, "drainTimeoutSeconds": 60, "logLevel": "DEBUG"},
        "env": [{"name": "LOG_FORMAT", "value": "console"}, {"name": "EXTRA", "value": "1"}],
        "service": {"type": "LoadBalancer", "annotations": {"a": "b"}},
    }
)


def env_of(dep: dict[str, Any]) -> dict[str, Any]:
    container = dep["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("spec", [MINIMAL, FULL], ids=["defaults", "full"])
def test_deployment_is_strictly_valid(spec: PoolSpec) -> None:
    strict(build_deployment("news", "ns", spec, voices(), 2))


def test_deployment_wiring() -> None:
    dep = build_deployment("news", "ns", FULL, voices(), 3)
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["selector"]["matchLabels"] == selector_labels("news")
    assert container["command"] == ["livedub", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready/streams"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    # Grace covers preStop (5) + the runtime's drain (60) + margin.
    assert pod["terminationGracePeriodSeconds"] == 75
    env = env_of(dep)
    assert env["DRAIN_TIMEOUT_S"] == "60"
    assert env["DEEPL_AUTH_KEY"] == {"secretKeyRef": {"name": "deepl", "key": "auth-key"}}
    assert env["AUTH_TOKENS_FILE"] == "/etc/livedub/auth/tokens"
    assert env["VOICES_FILE"] == "/etc/livedub/voices/voices.json"
    assert env["MAX_INFLIGHT"] == "8"
    assert env["LOG_FORMAT"] == "console" and env["EXTRA"] == "1"  # user env wins
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "8000"
    assert annotations["dubbing.livedub.io/voices-hash"] == voices_hash(voices())
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["securityContext"]["runAsNonRoot"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["model-cache"] == {"name": "model-cache", "persistentVolumeClaim": {"claimName": "models"}}
    sources = volumes["reference-audio"]["projected"]["sources"]
    assert {"configMap": {"name": "audio", "items": [{"key": "ana.wav", "path": "ana.wav"}]}} in sources
    assert {"secret": {"name": "private", "items": [{"key": "cy", "path": "cy.wav"}]}} in sources
    (fetch,) = pod["initContainers"]
    assert fetch["args"] == [f"{FETCHED_DIR}/bob.wav", "https://example.com/bob.wav"]
    # runAsNonRoot needs a numeric user, or the kubelet refuses an image whose USER is a name.
    assert fetch["securityContext"]["runAsNonRoot"] is True
    assert isinstance(fetch["securityContext"]["runAsUser"], int)
    # The autoscaler's model of the pod is the runtime's: capacity and retry-after come from the spec.
    assert env["MAX_POD_STREAMS"] == "60" and env["STREAM_RETRY_AFTER_S"] == "10"
    # Room for every stream's window of a full pod (60 x its maxInflight 8), or the pod-wide limit
    # refuses first.
    assert env["MAX_POD_INFLIGHT"] == "480"


def test_pod_inflight_follows_the_per_stream_window_with_the_runtime_default_as_floor() -> None:
    def pod_inflight(extra: dict) -> str:
        return env_of(build_deployment("dev", "ns", parse_pool_spec({**extra, **TOKENS}), [], 1))["MAX_POD_INFLIGHT"]

    assert pod_inflight({}) == "180"  # 60 streams x the runtime's default window of 3
    assert pod_inflight({"runtime": {"maxInflight": 5}}) == "300"
    assert pod_inflight({"asr": {"device": "cpu"}, "tts": {"device": "cpu"}}) == "64"  # 3 x 3, floor 64


def test_cpu_pool_capacity_defaults_to_the_measured_three_streams() -> None:
    spec = parse_pool_spec({"asr": {"device": "cpu"}, "tts": {"device": "cpu"}, **TOKENS})
    assert env_of(build_deployment("dev", "ns", spec, [], 1))["MAX_POD_STREAMS"] == "3"


def test_cpu_pool_requests_no_gpu_and_has_no_init_containers() -> None:
    dep = build_deployment("dev", "ns", parse_pool_spec({"resources": {"gpu": 0}, **TOKENS}), [], 1)
    pod = dep["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert pod["initContainers"] == []
    assert all(v["name"] != "reference-audio" for v in pod["volumes"])


@pytest.mark.parametrize(
    ("cpu", "threads"), [("2", "2"), ("1500m", "1"), ("250m", "1"), ("8", "8"), ("96", "64"), ("lots", None)]
)
def test_cpu_tts_gets_threads_from_the_pod_cpu_request(cpu: str, threads: str | None) -> None:
    spec = parse_pool_spec(
        {"resources": {"gpu": 0, "cpu": cpu}, "asr": {"device": "cpu"}, "tts": {"device": "cpu"}, **TOKENS}
    )
    env = {
        e["name"]: e.get("value")
        for e in build_deployment("dev", "ns", spec, [], 1)["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env.get("TTS_CPU_THREADS") == threads
    assert "ASR_CPU_THREADS" not in env, "Whisper's own default (2 threads) is not the node's core count"


def test_gpu_engines_get_no_cpu_thread_settings() -> None:
    env = build_deployment("news", "ns", FULL, voices(), 1)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert FULL.asr.device == "cuda"
    assert not {"ASR_CPU_THREADS", "TTS_CPU_THREADS"} & {e["name"] for e in env}


def test_voices_configmap() -> None:
    cm = build_voices_configmap("news", "ns", voices())
    strict(cm)
    doc = json.loads(cm["data"]["voices.json"])
    assert doc["ana"] == {"language": "es", "gender": "female", "reference_audio": f"{MOUNTED_DIR}/ana.wav"}
    assert doc["bob"]["reference_audio"] == f"{FETCHED_DIR}/bob.wav"
    assert doc["dee"] == {"language": "es", "gender": "female"}
    # Order of input does not change the bytes (and so does not roll the pods).
    assert build_voices_configmap("news", "ns", voices()[::-1]) == cm


def test_service_and_pdb() -> None:
    svc = build_service("news", "ns", FULL)
    strict(svc)
    assert svc["spec"]["type"] == "LoadBalancer"
    # No affinity by default: new streams must reach the pods with room (issue 12).
    assert svc["spec"]["sessionAffinity"] == "None"
    assert "sessionAffinityConfig" not in svc["spec"]
    assert svc["metadata"]["annotations"] == {"a": "b"}
    affinity_spec = parse_pool_spec({"service": {"sessionAffinity": "ClientIP"}, **TOKENS})
    affinity = build_service("news", "ns", affinity_spec)
    strict(affinity)
    assert affinity["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    pdb = build_pdb("news", "ns", MINIMAL)
    assert pdb is not None
    strict(pdb)
    assert pdb["spec"]["maxUnavailable"] == 1
    no_pdb = parse_pool_spec({"podDisruptionBudget": {"enabled": False}, **TOKENS})
    assert build_pdb("news", "ns", no_pdb) is None


def test_selector_string_matches_labels() -> None:
    expected = "app.kubernetes.io/instance=news,app.kubernetes.io/name=livedub-runtime"
    assert label_selector_string("news") == expected


def test_scheduling_fields_reach_the_pod() -> None:
    pod = build_deployment("news", "ns", FULL, voices(), 1)["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "live"
    assert pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 100
    zone, host = pod["topologySpreadConstraints"]
    # A constraint without a selector spreads the pool's own pods; an explicit one is kept.
    assert zone["labelSelector"] == {"matchLabels": selector_labels("news")}
    assert host["labelSelector"] == {"matchLabels": {"tier": "gpu"}}
    minimal = build_deployment("news", "ns", MINIMAL, voices(), 1)["spec"]["template"]["spec"]
    assert "affinity" not in minimal and "topologySpreadConstraints" not in minimal
