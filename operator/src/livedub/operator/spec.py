"""Typed views of the DubbingPool and VoiceProfile specs.

The API server applies the CRD's defaults and validations before the operator sees an object; these
models repeat the defaults (``tests/unit/operator/test_spec_defaults.py`` checks they agree with
``crds/``) so the operator behaves the same on servers that do not default (kmock in tests, an old
object stored before a default existed) and re-check the cross-field rules the CEL rules state, so a
bad spec that slipped past admission becomes a clear status message instead of a crash.
"""

import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from livedub.operator.errors import InvalidSpecError


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class SecretKeyRef(_Model):
    name: str = Field(min_length=1)
    key: str = Field(min_length=1)


class Languages(_Model):
    sources: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    targets: list[str] = Field(default_factory=lambda: ["es"], min_length=1)


class AsrSpec(_Model):
    engine: Literal["whisper"] = "whisper"
    model_size: Literal["tiny", "base", "small", "medium", "large-v2", "large-v3", "turbo"] = "base"
    device: Literal["cpu", "cuda"] = "cuda"
    compute_type: Literal["default", "auto", "int8", "int8_float16", "float16", "float32"] = "auto"
    model_path: str | None = None


class DeeplSecretRef(_Model):
    name: str = Field(min_length=1)
    key: str = Field("auth-key", min_length=1)


class MtSpec(_Model):
    engine: Literal["auto", "deepl", "apertium"] = "auto"
    deepl_secret_ref: DeeplSecretRef | None = None
    deepl_server_url: str | None = None


class TtsSpec(_Model):
    engine: Literal["auto", "kokoro", "espeak", "xtts"] = "auto"
    device: Literal["cpu", "cuda"] = "cuda"
    model_path: str | None = None


class Resources(_Model):
    cpu: str = "4"
    memory: str = "16Gi"
    gpu: int = Field(1, ge=0, le=8)
    gpu_resource_name: str = "nvidia.com/gpu"


# Live streams one pod serves in real time, when ``autoscaling.maxStreamsPerPod`` is unset; keyed by
# ``asr.device``. CPU: measured by ``make bench`` on a 2-core machine (3 real-time streams keep up at
# p95 2.1 s, 4 do not; README "Streams per machine"). CUDA: an estimate, not a measurement — Whisper
# base's ASR stage alone sustained ~512 streams on one H200 (README "GPU figures"), but TTS (Kokoro on
# onnxruntime's CUDA provider, 68 % of a fragment's time on CPU) has not run on a GPU here, so the
# default is the issue-12 model's 60, an order of magnitude under the ASR figure; measure yours with
# ``hack/loadgen.py`` against one pod and set maxStreamsPerPod.
DEFAULT_STREAMS_PER_POD: dict[str, int] = {"cpu": 3, "cuda": 60}


def _fires(expr: str) -> bool:
    """Whether a valid cron expression ever fires: croniter accepts '0 0 30 2 *' but finds no date."""
    try:
        it = croniter(expr, datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
        it.get_next(datetime.datetime)
        it.get_prev(datetime.datetime)
    except CroniterError:
        return False
    return True


class Schedule(_Model):
    """A warm floor for a known slot (a news hour): at least ``min_replicas`` pods from each firing of
    ``start`` until the next firing of ``end`` (cron, five fields, in ``timezone``). Start it early
    enough for pods to be ready before the slot (model load, ~90 s on GPU nodes)."""

    name: str = Field("", max_length=63)
    start: str = Field(min_length=1)
    end: str = Field(min_length=1)
    timezone: str = "UTC"
    min_replicas: int = Field(ge=0, le=1000)

    @model_validator(mode="after")
    def _parses(self) -> "Schedule":
        # Checked here, where a bad value becomes the pool's InvalidSpec condition, not a crash later.
        for field, expr in (("start", self.start), ("end", self.end)):
            if len(expr.split()) != 5 or not croniter.is_valid(expr):
                raise ValueError(f"{field} {expr!r} is not a five-field cron expression (e.g. '50 18 * * 1-5')")
            if not _fires(expr):
                raise ValueError(f"{field} {expr!r} never fires (e.g. '0 0 30 2 *': there is no 30 February)")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone (e.g. 'Europe/Madrid')") from exc
        return self


class Autoscaling(_Model):
    mode: Literal["builtin", "external"] = "builtin"
    max_streams_per_pod: int | None = Field(None, ge=1, le=10000)
    # Chosen with ``make bench-autoscale`` (bench/autoscale.py): see README "Autoscaling".
    target_utilization: float = Field(0.85, ge=0.05, le=1)
    tolerance: float = Field(0.05, ge=0, le=0.9)
    stream_retry_after_seconds: int = Field(10, ge=1, le=300)
    overload_in_flight_per_stream: float = Field(2.0, ge=0.5, le=64)
    backpressure_severity: Literal["low", "medium", "high", "critical"] = "high"
    scale_up_cooldown_seconds: int = Field(15, ge=0, le=3600)
    scale_down_cooldown_seconds: int = Field(120, ge=0, le=86400)
    scale_down_step: int = Field(1, ge=1, le=100)
    # Gentle scale-down: the most a pod chosen to go waits for its live streams to end or move.
    drain_grace_seconds: int = Field(300, ge=0, le=86400)
    # Rebalance (scaling/rebalance.py): which pods shed (past their capacity or behind; "target": past
    # the target's band too), most live streams asked to move per tick (0: never), and how long a
    # pod's shed request stands before it is taken off.
    rebalance_above: Literal["capacity", "target"] = "capacity"
    rebalance_max_streams_per_tick: int = Field(10, ge=0, le=1000)
    rebalance_timeout_seconds: int = Field(180, ge=10, le=3600)
    schedules: list[Schedule] = Field(default_factory=list, max_length=32)


class RuntimeSpec(_Model):
    port: int = Field(8000, ge=1024, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    max_inflight: int | None = Field(None, ge=1, le=1000)
    drain_timeout_seconds: int = Field(30, ge=1, le=3600)
    artifacts_enabled: bool = False


class AuthTokensRef(_Model):
    name: str = Field(min_length=1)
    key: str = Field("tokens", min_length=1)


class ModelCache(_Model):
    claim_name: str | None = None


class ServiceSpec(_Model):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    # None: websocket clients hold one connection and need no affinity, and new streams must reach
    # the pods with room (issue 12). Polling clients behind an ingress: cookie affinity there.
    session_affinity: Literal["None", "ClientIP"] = "None"
    annotations: dict[str, str] = Field(default_factory=dict)


class PdbSpec(_Model):
    enabled: bool = True
    max_unavailable: int = Field(1, ge=0)


class PoolSpec(_Model):
    image: str = Field("ghcr.io/livedub/livedub-runtime:0.1.0", min_length=1)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[str] = Field(default_factory=list)
    languages: Languages = Field(default_factory=lambda: Languages.model_validate({}))
    asr: AsrSpec = Field(default_factory=lambda: AsrSpec.model_validate({}))
    mt: MtSpec = Field(default_factory=lambda: MtSpec.model_validate({}))
    tts: TtsSpec = Field(default_factory=lambda: TtsSpec.model_validate({}))
    resources: Resources = Field(default_factory=lambda: Resources.model_validate({}))
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    # Passed through as core/v1 objects; kubernetes-validate checks the builder's output in tests.
    affinity: dict[str, Any] = Field(default_factory=dict)
    topology_spread_constraints: list[dict[str, Any]] = Field(default_factory=list)
    priority_class_name: str | None = None
    runtime_class_name: str | None = None
    replicas: int | None = Field(None, ge=0)
    min_replicas: int = Field(1, ge=0, le=1000)
    max_replicas: int = Field(4, ge=1, le=1000)
    autoscaling: Autoscaling = Field(default_factory=lambda: Autoscaling.model_validate({}))
    runtime: RuntimeSpec = Field(default_factory=lambda: RuntimeSpec.model_validate({}))
    # Required: the runtime refuses to serve beyond loopback without worker tokens.
    auth_tokens_secret_ref: AuthTokensRef
    model_cache: ModelCache = Field(default_factory=lambda: ModelCache.model_validate({}))
    voice_profiles: list[str] = Field(default_factory=list)
    env: list[dict[str, Any]] = Field(default_factory=list)
    service: ServiceSpec = Field(default_factory=lambda: ServiceSpec.model_validate({}))
    pod_disruption_budget: PdbSpec = Field(default_factory=lambda: PdbSpec.model_validate({}))

    # The same rules as the CRD's x-kubernetes-validations, for servers that did not enforce them.
    @model_validator(mode="after")
    def _cross_field_rules(self) -> "PoolSpec":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) must be <= maxReplicas ({self.max_replicas})")
        if self.replicas is not None and not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError("replicas must lie between minReplicas and maxReplicas")
        if self.mt.engine == "deepl" and self.mt.deepl_secret_ref is None:
            raise ValueError("mt.engine deepl needs mt.deeplSecretRef")
        return self

    @property
    def streams_per_pod(self) -> int:
        """The pod's capacity in live streams: the spec's, else the default for the ASR device."""
        explicit = self.autoscaling.max_streams_per_pod
        return explicit if explicit is not None else DEFAULT_STREAMS_PER_POD[self.asr.device]


class ReferenceAudio(_Model):
    config_map_key_ref: SecretKeyRef | None = None
    secret_key_ref: SecretKeyRef | None = None
    url: str | None = Field(None, pattern=r"^https?://")

    @model_validator(mode="after")
    def _exactly_one(self) -> "ReferenceAudio":
        sources = [self.config_map_key_ref, self.secret_key_ref, self.url]
        if sum(s is not None for s in sources) != 1:
            raise ValueError("referenceAudio: set exactly one of configMapKeyRef, secretKeyRef, url")
        return self


class VoiceSpec(_Model):
    language: str = Field(pattern=r"^[a-z]{2,3}$")
    gender: Literal["male", "female", "neutral"]
    description: str | None = Field(None, max_length=1024)
    reference_audio: ReferenceAudio | None = None


def _explain(kind: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        parts.append(f"{where}: {err['msg']}")
    return f"invalid {kind} spec: " + "; ".join(parts)


def parse_pool_spec(spec: Any) -> PoolSpec:
    """Parse a DubbingPool ``spec`` mapping; raise :class:`InvalidSpecError` with every problem."""
    try:
        return PoolSpec.model_validate(dict(spec or {}))
    except ValidationError as exc:
        raise InvalidSpecError(_explain("DubbingPool", exc)) from exc


def parse_voice_spec(spec: Any) -> VoiceSpec:
    try:
        return VoiceSpec.model_validate(dict(spec or {}))
    except ValidationError as exc:
        raise InvalidSpecError(_explain("VoiceProfile", exc)) from exc
