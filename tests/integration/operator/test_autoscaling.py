"""The autoscaler end to end: real kopf, the emulated API, and loopback HTTP servers standing in for
each runtime pod's /metrics (pods point at them through their Prometheus port annotation).

There is no Deployment controller here, so the test plays it: ``sync_pods`` makes the pod objects
match the Deployment's replicas, each pod backed by its own metrics server.
"""

import re
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import aiohttp
from kopf_harness import ACTIVATOR_PORT, METRICS_PORT, Background, Cluster, MetricsPod, wait_for
from prometheus_client.parser import text_string_to_metric_families

API = "dubbing.livedub.io/v1alpha1"
SELECTOR = "app.kubernetes.io/instance=news,app.kubernetes.io/name=livedub-runtime"


def scaling_pool(**autoscaling: Any) -> dict[str, Any]:
    # Two streams per pod, aimed for in full: round numbers for the arithmetic below.
    policy = {
        "maxStreamsPerPod": 2,
        "targetUtilization": 1.0,
        "scaleUpCooldownSeconds": 0,
        "scaleDownCooldownSeconds": 1,
        "tolerance": 0.1,
        **autoscaling,
    }
    return {
        "apiVersion": API,
        "kind": "DubbingPool",
        "metadata": {"name": "news"},
        "spec": {"minReplicas": 1, "maxReplicas": 4, "autoscaling": policy, "authTokensSecretRef": {"name": "workers"}},
    }


class FakeDeploymentController:
    def __init__(self, cluster: Cluster, start_metrics: Callable[[], MetricsPod]) -> None:
        self.cluster = cluster
        self.start_metrics = start_metrics
        self.pods: dict[str, MetricsPod] = {}

    def victim(self) -> str:
        """The ReplicaSet's choice (its ActivePods ranking, in short): Pending before running pods,
        not-Ready before Ready, then lowest pod-deletion-cost, newest among equals."""

        def rank(name: str) -> tuple[bool, bool, int, int]:
            pod = self.cluster.require("pods", name)
            annotations = pod["metadata"].get("annotations") or {}
            status = pod.get("status") or {}
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
            cost = int(annotations.get("controller.kubernetes.io/pod-deletion-cost", 0))
            return status.get("phase") != "Pending", ready, cost, -int(name.split("-")[1])

        return min(self.pods, key=rank)

    def forget_deleted(self) -> None:
        """Pods deleted by someone else (the operator, by name) are no longer the ReplicaSet's."""
        for name in list(self.pods):
            pod = self.cluster.get("pods", name)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                self.pods.pop(name)

    def sync(self) -> list[MetricsPod]:
        """Create or delete pod objects until they match the Deployment's replicas."""
        dep = self.cluster.get("deployments", "news")
        assert dep is not None
        want = dep["spec"]["replicas"]
        self.forget_deleted()
        while len(self.pods) < want:
            self.serial = getattr(self, "serial", 0) + 1
            name = f"news-{self.serial}"
            metrics = self.start_metrics()
            self.cluster.create(
                "pods",
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": name,
                        "labels": {"app.kubernetes.io/name": "livedub-runtime", "app.kubernetes.io/instance": "news"},
                        "annotations": {"prometheus.io/port": str(metrics.port)},
                    },
                    "spec": {"containers": [{"name": "runtime", "image": "x"}]},
                },
            )
            self.cluster.patch(
                "pods",
                name,
                {
                    "status": {
                        "phase": "Running",
                        "podIP": "127.0.0.1",
                        "conditions": [{"type": "Ready", "status": "True"}],
                    }
                },
                sub="status",
            )
            self.pods[name] = metrics
        while len(self.pods) > want:
            name = self.victim()
            self.cluster.delete("pods", name)
            self.pods.pop(name)
        ready = len(self.pods)
        self.cluster.patch("deployments", "news", {"status": {"replicas": ready, "readyReplicas": ready}}, sub="status")
        return list(self.pods.values())


def replicas(cluster: Cluster) -> int:
    dep = cluster.get("deployments", "news")
    return -1 if dep is None else int(dep["spec"]["replicas"])


def last_scaling(cluster: Cluster) -> dict[str, Any]:
    return dict((cluster.get("pools", "news") or {}).get("status", {}).get("lastScaling") or {})


def test_load_scales_up_then_idle_scales_down_after_cooldown(
    cluster: Cluster, operator: Any, metrics_pods: Callable[[], MetricsPod]
) -> None:
    cluster.create("pools", scaling_pool())
    wait_for(lambda: replicas(cluster) == 1, what="Deployment at minReplicas")
    controller = FakeDeploymentController(cluster, metrics_pods)
    (first,) = controller.sync()

    # 7 streams for 2 per pod -> 4 pods. In flight and queued are not demand (and not added up).
    first.streams, first.in_flight, first.queue_depth = 7, 5, 2
    wait_for(lambda: replicas(cluster) == 4, what="scale-up to 4")
    # The Deployment is patched inside the handler; kopf writes the pool's status just after it.
    wait_for(lambda: last_scaling(cluster).get("toReplicas") == 4, what="scale-up recorded in status")
    decision = last_scaling(cluster)
    assert decision["action"] == "up" and decision["fromReplicas"] == 1 and decision["toReplicas"] == 4
    assert decision["streams"] == 7 and decision["inFlight"] == 5 and decision["podsScraped"] == 1
    pods = controller.sync()
    wait_for(lambda: cluster.require("pools", "news")["status"]["readyReplicas"] == 4, what="status shows 4 ready")

    for pod in pods:
        pod.streams, pod.in_flight, pod.queue_depth = 0, 0, 0
    # One pod per decision (scaleDownStep 1), each after the 1 s cooldown: 4 -> 3 -> 2 -> 1.
    seen = set()
    for expected in (3, 2, 1):
        wait_for(lambda e=expected: replicas(cluster) == e, what=f"scale-down to {expected}")  # type: ignore[misc]
        seen.add(replicas(cluster))
        controller.sync()
    assert seen == {3, 2, 1}
    assert last_scaling(cluster)["action"] in ("down", "hold")
    wait_for(lambda: last_scaling(cluster).get("code") == "AtMinReplicas", what="holds at minReplicas")

    reasons = {e.get("reason") for e in cluster.list("events")}
    assert {"ScaledUp", "ScaledDown", "AtMinReplicas"} <= reasons
    pool = cluster.get("pools", "news")
    assert pool is not None
    scaling = next(c for c in pool["status"]["conditions"] if c["type"] == "Scaling")
    assert scaling["status"] == "False"


def test_unreachable_pod_blocks_scale_down_and_backpressure_scales_up(
    cluster: Cluster, operator: Any, metrics_pods: Callable[[], MetricsPod]
) -> None:
    spec = scaling_pool(scaleDownCooldownSeconds=0)
    spec["spec"]["minReplicas"] = 2
    cluster.create("pools", spec)
    wait_for(lambda: replicas(cluster) == 2, what="Deployment at minReplicas")
    controller = FakeDeploymentController(cluster, metrics_pods)
    a, _ = controller.sync()

    # Backpressure at or above "high" since the previous scrape forces one more pod even at low load.
    a.backpressure = {"high": 0}
    wait_for(lambda: last_scaling(cluster).get("podsScraped") == 2, what="first scrape")
    a.backpressure = {"high": 3, "low": 10}
    wait_for(lambda: replicas(cluster) == 3, what="backpressure scale-up")
    wait_for(lambda: last_scaling(cluster).get("toReplicas") == 3, what="scale-up recorded in status")
    assert "3 backpressure events" in last_scaling(cluster)["reason"]
    (_, _, c) = controller.sync()

    # Idle, but one pod stops answering: the pool must not shrink while it cannot see that pod.
    c.alive = False
    wait_for(lambda: last_scaling(cluster).get("code") == "PodsUnreachable", what="unreachable hold")
    assert replicas(cluster) == 3
    c.alive = True
    wait_for(lambda: replicas(cluster) == 2, what="scale-down once every pod answers")


def test_external_mode_follows_spec_replicas_from_the_scale_subresource(cluster: Cluster, operator: Any) -> None:
    spec = scaling_pool(mode="external")
    spec["spec"]["replicas"] = 2
    cluster.create("pools", spec)
    wait_for(lambda: replicas(cluster) == 2, what="Deployment follows spec.replicas")
    # What `kubectl scale dubbingpool/news --replicas=3` (or HPA/KEDA) writes.
    cluster.patch("pools", "news", {"spec": {"replicas": 3}})
    wait_for(lambda: replicas(cluster) == 3, what="Deployment follows the new spec.replicas")
    assert "lastScaling" not in cluster.require("pools", "news")["status"]


def test_refused_streams_scale_up_past_what_the_full_pods_show(
    cluster: Cluster, operator: Any, metrics_pods: Callable[[], MetricsPod]
) -> None:
    cluster.create("pools", scaling_pool(streamRetryAfterSeconds=1))
    wait_for(lambda: replicas(cluster) == 1, what="Deployment at minReplicas")
    (pod,) = FakeDeploymentController(cluster, metrics_pods).sync()
    pod.streams = 2  # full: it shows 2 streams, whatever the demand
    wait_for(lambda: last_scaling(cluster).get("code") == "WithinTolerance", what="full pod, nothing waiting")
    # Refusals keep coming (2 per 0.3 s tick, each waiting worker retrying every second): about 7
    # streams wait, which the full pod's own figures (2 streams, at target) cannot show.
    pod.refusals_per_scrape = 2
    wait_for(lambda: replicas(cluster) == 4, what="scale-up from refusals to maxReplicas")
    ups = [e["message"] for e in cluster.list("events") if e.get("reason") == "ScaledUp"]
    assert any(re.search(r"\+ ([3-9]|\d\d+) waiting", m) for m in ups), ups


def test_min_replicas_zero_pool_scales_to_one_pod_on_the_first_connection_attempt(
    cluster: Cluster, operator: Any, background: Background
) -> None:
    spec = scaling_pool()
    spec["spec"]["minReplicas"] = 0
    cluster.create("pools", spec)
    wait_for(lambda: last_scaling(cluster).get("code") == "ScaledToZero", what="pool idle at zero")
    assert replicas(cluster) == 0

    async def connect() -> tuple[int, dict[str, Any]]:
        # What a worker's Socket.IO client sends, routed to the activator while the pool has no pods.
        url = f"http://127.0.0.1:{ACTIVATOR_PORT}/socket.io/?EIO=4&transport=websocket"
        host = {"Host": "news.default.svc.cluster.local"}
        async with aiohttp.ClientSession() as session, session.get(url, headers=host) as resp:
            return resp.status, await resp.json()

    status, body = background.run(connect())
    assert status == 503 and body["code"] == "POD_STARTING" and body["retryable"] is True
    wait_for(lambda: replicas(cluster) == 1, what="scale from zero to one pod")
    wait_for(lambda: last_scaling(cluster).get("code") == "Activated", what="activation recorded")
    assert any(e.get("reason") == "Activated" for e in cluster.list("events"))


def test_scale_down_removes_the_least_loaded_pod(
    cluster: Cluster, operator: Any, metrics_pods: Callable[[], MetricsPod]
) -> None:
    spec = scaling_pool(scaleDownCooldownSeconds=0)
    spec["spec"]["minReplicas"] = 3
    cluster.create("pools", spec)
    wait_for(lambda: replicas(cluster) == 3, what="three pods")
    controller = FakeDeploymentController(cluster, metrics_pods)
    busy, idle, middle = controller.sync()
    busy.streams, idle.streams, middle.streams = 2, 0, 1
    # 3 streams need 2 pods once the floor allows it: the pod with no stream must be the one to go.
    cluster.patch("pools", "news", {"spec": {"minReplicas": 1}})
    wait_for(lambda: replicas(cluster) == 2, what="scale-down to 2")
    costs = {
        p["metadata"]["name"]: p["metadata"]["annotations"].get("controller.kubernetes.io/pod-deletion-cost")
        for p in cluster.list("pods")
    }
    # The idle pod was drained (nothing to wait for) and deleted by name; the others cost their streams.
    assert costs == {"news-1": "2", "news-3": "1"}
    controller.sync()
    assert sorted(controller.pods) == ["news-1", "news-3"]


def operator_metrics() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The operator's own /metrics, as {(sample name, labels): value}; waits for kopf's start-up."""

    def scrape() -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5) as resp:
                return str(resp.read().decode())
        except urllib.error.URLError:
            return None  # the startup handler has not opened the port yet

    text = wait_for(scrape, what="the operator's /metrics")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return metrics.get((name, frozenset(labels.items())))


def test_operator_metrics_show_reconciles_decisions_and_pool_gauges(
    cluster: Cluster, operator: Any, metrics_pods: Callable[[], MetricsPod]
) -> None:
    before = operator_metrics()
    ups_before = sample(before, "livedub_operator_scale_decisions_total", direction="up", reason="ScaledUp") or 0
    cluster.create("pools", scaling_pool())
    wait_for(lambda: replicas(cluster) == 1, what="Deployment at minReplicas")
    controller = FakeDeploymentController(cluster, metrics_pods)
    (first,) = controller.sync()
    first.streams = 5  # 2 per pod -> 3 pods
    wait_for(lambda: replicas(cluster) == 3, what="scale-up to 3")
    controller.sync()

    pool = {"namespace": "default", "pool": "news"}

    def settled() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        metrics = operator_metrics()
        ok = sample(metrics, "livedub_operator_pool_replicas", **pool) == 3 and (
            sample(metrics, "livedub_operator_pool_capacity_streams", **pool) == 6
        )
        return metrics if ok else None

    metrics = wait_for(settled, what="pool gauges at 3 replicas, 3 pods x 2 streams of capacity")
    assert sample(metrics, "livedub_operator_pool_min_replicas", **pool) == 1
    assert sample(metrics, "livedub_operator_pool_max_replicas", **pool) == 4
    assert sample(metrics, "livedub_operator_pool_streams", **pool) == 5
    assert sample(metrics, "livedub_operator_pool_desired_replicas", **pool) == 3
    ups = sample(metrics, "livedub_operator_scale_decisions_total", direction="up", reason="ScaledUp") or 0
    assert ups >= ups_before + 1
    event = {"kind": "DubbingPool", "trigger": "event", "outcome": "success"}
    timer = {"kind": "DubbingPool", "trigger": "timer", "outcome": "success"}
    assert (sample(metrics, "livedub_operator_reconciles_total", **event) or 0) >= 1
    assert (sample(metrics, "livedub_operator_reconciles_total", **timer) or 0) >= 1
    assert (sample(metrics, "livedub_operator_child_applies_total", kind="Deployment", outcome="created") or 0) >= 1

    # A deleted pool's gauges go away: no alert may fire on the last figures of a pool that is gone.
    cluster.delete("pools", "news")
    wait_for(
        lambda: sample(operator_metrics(), "livedub_operator_pool_replicas", **pool) is None,
        what="pool gauges removed after delete",
    )
