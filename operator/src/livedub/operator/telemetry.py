"""The operator's own Prometheus metrics: what it reconciled, what failed, what it decided.

The runtime pods say how loaded they are (``sts_*``); these say what the operator did about it, so an
alert can tell "the pool is full" from "the operator is not acting": reconciles by kind, trigger and
outcome, errors by kind and class, child writes, scale decisions by direction and reason (the
decision's code, a bounded set), and per-pool gauges (replicas current/desired/min/max, streams,
capacity, streams waiting) labelled ``namespace`` and ``pool`` like the runtime series the chart's
ServiceMonitor relabels, so rules can join the two.

One registry of our own (not prometheus_client's global one, which other libraries may write to),
served by prometheus_client's threaded HTTP server: a scrape never runs on kopf's event loop, and a
slow scraper cannot delay a reconcile. Recording is a few dictionary updates under a lock.
"""

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from threading import Thread
from typing import Literal
from wsgiref.simple_server import WSGIServer

import kopf
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.exposition import start_http_server

from livedub.operator.errors import InvalidSpecError, KubernetesApiError, KubernetesApiRejected

PREFIX = "livedub_operator_"
Trigger = Literal["event", "timer"]

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

RECONCILES = Counter(
    PREFIX + "reconciles_total",
    "Reconciles by kind, trigger (event: create/update/resume; timer: the periodic tick) and outcome.",
    ["kind", "trigger", "outcome"],
    registry=REGISTRY,
)
#: Seconds: a reconcile is a handful of API calls (ms on a healthy API server); the tick adds one
#: scrape round, bounded by the scrape timeout (2 s by default).
RECONCILE_SECONDS = Histogram(
    PREFIX + "reconcile_duration_seconds",
    "Time spent in one reconcile, by kind and trigger.",
    ["kind", "trigger"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
ERRORS = Counter(
    PREFIX + "errors_total",
    "Failed reconciles by kind and error class (invalid_spec, api_rejected, api_temporary, unexpected).",
    ["kind", "error"],
    registry=REGISTRY,
)
CHILD_APPLIES = Counter(
    PREFIX + "child_applies_total",
    "Children compared with their builder by kind and outcome (created, updated = drift or spec change, unchanged).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
SCALE_DECISIONS = Counter(
    PREFIX + "scale_decisions_total",
    "Autoscaler decisions by direction (up, down, hold) and reason (the decision code, e.g. ScaledUp, "
    "AtMaxReplicas, ScaleDownCooldown).",
    ["direction", "reason"],
    registry=REGISTRY,
)
REBALANCE_DECISIONS = Counter(
    PREFIX + "rebalance_decisions_total",
    "Shed requests on overloaded pods by action: shed (a pod marked), done (it shed what it was asked), "
    "cleared (timed out, the pod started draining, or a mark this operator did not write).",
    ["action"],
    registry=REGISTRY,
)
REBALANCE_STREAMS = Counter(
    PREFIX + "rebalance_streams_total", "Live streams overloaded pods were asked to shed.", registry=REGISTRY
)

_POOL = ["namespace", "pool"]
POOL_REPLICAS = Gauge(PREFIX + "pool_replicas", "Replicas of the pool's Deployment.", _POOL, registry=REGISTRY)
POOL_DESIRED = Gauge(
    PREFIX + "pool_desired_replicas", "Replicas the last decision asked for.", _POOL, registry=REGISTRY
)
POOL_MIN = Gauge(PREFIX + "pool_min_replicas", "The pool's minReplicas.", _POOL, registry=REGISTRY)
POOL_MAX = Gauge(PREFIX + "pool_max_replicas", "The pool's maxReplicas.", _POOL, registry=REGISTRY)
POOL_STREAMS = Gauge(
    PREFIX + "pool_streams", "Live streams the pool's pods reported at the last scrape.", _POOL, registry=REGISTRY
)
POOL_CAPACITY = Gauge(
    PREFIX + "pool_capacity_streams",
    "Streams the pool can serve now: pods with models loaded x maxStreamsPerPod.",
    _POOL,
    registry=REGISTRY,
)
POOL_WAITING = Gauge(
    PREFIX + "pool_streams_waiting",
    "Streams estimated to be waiting for a place (from the refusal rate).",
    _POOL,
    registry=REGISTRY,
)
POOL_UNREACHABLE = Gauge(
    PREFIX + "pool_pods_unreachable",
    "Pods that did not answer /metrics (or whose models are not loaded) at the last scrape.",
    _POOL,
    registry=REGISTRY,
)
_POOL_GAUGES = (
    POOL_REPLICAS,
    POOL_DESIRED,
    POOL_MIN,
    POOL_MAX,
    POOL_STREAMS,
    POOL_CAPACITY,
    POOL_WAITING,
    POOL_UNREACHABLE,
)


def error_class(exc: BaseException) -> str:
    """A bounded label for a failure: what kind of fix it needs, not its message."""
    if isinstance(exc, InvalidSpecError):
        return "invalid_spec"
    if isinstance(exc, KubernetesApiRejected):
        return "api_rejected"
    if isinstance(exc, KubernetesApiError | kopf.TemporaryError):
        return "api_temporary"
    return "unexpected"


@contextmanager
def reconciling(kind: str, trigger: Trigger) -> Iterator[None]:
    """Count and time one reconcile; a failure is counted by class and re-raised for kopf."""
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:  # a cancellation (shutdown) is no failure
        error = error_class(exc)
        RECONCILES.labels(kind=kind, trigger=trigger, outcome=error).inc()
        ERRORS.labels(kind=kind, error=error).inc()
        raise
    else:
        RECONCILES.labels(kind=kind, trigger=trigger, outcome="success").inc()
    finally:
        RECONCILE_SECONDS.labels(kind=kind, trigger=trigger).observe(time.perf_counter() - started)


def record_children(changed: Mapping[str, str]) -> None:
    for kind, outcome in changed.items():
        CHILD_APPLIES.labels(kind=kind, outcome=outcome).inc()


def record_bounds(namespace: str, pool: str, *, replicas: int, min_replicas: int, max_replicas: int) -> None:
    POOL_REPLICAS.labels(namespace, pool).set(replicas)
    POOL_MIN.labels(namespace, pool).set(min_replicas)
    POOL_MAX.labels(namespace, pool).set(max_replicas)


@dataclass(frozen=True)
class PoolLoad:
    """One autoscaler round of a pool, as the gauges show it."""

    desired_replicas: int
    streams: float
    capacity_streams: float
    streams_waiting: float
    pods_unreachable: int


def record_decision(namespace: str, pool: str, direction: str, reason: str, load: PoolLoad) -> None:
    SCALE_DECISIONS.labels(direction=direction, reason=reason).inc()
    POOL_DESIRED.labels(namespace, pool).set(load.desired_replicas)
    POOL_STREAMS.labels(namespace, pool).set(load.streams)
    POOL_CAPACITY.labels(namespace, pool).set(load.capacity_streams)
    POOL_WAITING.labels(namespace, pool).set(load.streams_waiting)
    POOL_UNREACHABLE.labels(namespace, pool).set(load.pods_unreachable)


def record_rebalance(action: str, streams: int = 0) -> None:
    REBALANCE_DECISIONS.labels(action=action).inc()
    REBALANCE_STREAMS.inc(streams)


def record_desired(namespace: str, pool: str, desired_replicas: int) -> None:
    """Without the builtin autoscaler (mode external) the desired figure is spec.replicas."""
    POOL_DESIRED.labels(namespace, pool).set(desired_replicas)


def forget_pool(namespace: str, pool: str) -> None:
    """Drop a deleted (or no longer valid) pool's series, so no alert fires on a stale value."""
    for gauge in _POOL_GAUGES:
        # prometheus_client < 0.21 raises KeyError for a label set never recorded (external mode has
        # no streams, for one); later versions ignore it.
        with suppress(KeyError):
            gauge.remove(namespace, pool)


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: Thread

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def start(port: int, addr: str = "0.0.0.0") -> MetricsServer:  # Prometheus scrapes it through a Service
    server, thread = start_http_server(port, addr, registry=REGISTRY)
    return MetricsServer(server, thread)
