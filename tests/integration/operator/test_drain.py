"""Gentle scale-down end to end: real kopf against the emulated API, pods backed by loopback /metrics.

The least-loaded pod is marked draining (the annotation the runtime reads through its downward-API
file), replicas stay while it carries streams, drop once they end (or the grace passes) with
pod-deletion-cost making it the ReplicaSet's victim, and rising load takes the mark off instead of
starting a pod. The drain lives in status and annotations, so a restarted operator carries on.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kopf.testing import KopfRunner
from kopf_harness import Cluster, MetricsPod, wait_for
from test_autoscaling import FakeDeploymentController, last_scaling, replicas, scaling_pool

DRAINING = "dubbing.livedub.io/draining"
COST = "controller.kubernetes.io/pod-deletion-cost"


@contextmanager
def running_operator() -> Iterator[KopfRunner]:
    args = ["run", "-A", "--standalone", "--verbose", "-m", "livedub.operator.main"]
    with KopfRunner(args, timeout=30) as runner:
        yield runner
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None, runner.output


def annotations(cluster: Cluster, pod: str) -> dict[str, str]:
    return dict(cluster.require("pods", pod)["metadata"].get("annotations") or {})


def drain_status(cluster: Cluster) -> dict[str, Any]:
    return dict(cluster.require("pools", "news").get("status", {}).get("drain") or {})


def three_pods(
    cluster: Cluster, metrics_pods: Callable[[], MetricsPod], **autoscaling: Any
) -> FakeDeploymentController:
    # 4 streams per pod at full target: 3 pods carrying 4 + 1 + 3 = 8 streams need only 2.
    spec = scaling_pool(maxStreamsPerPod=4, scaleDownCooldownSeconds=0, **autoscaling)
    spec["spec"]["minReplicas"] = 3
    cluster.create("pools", spec)
    wait_for(lambda: replicas(cluster) == 3, what="three pods")
    controller = FakeDeploymentController(cluster, metrics_pods)
    busy, light, middle = controller.sync()
    busy.streams, light.streams, middle.streams = 4, 1, 3
    return controller


def hold_for(seconds: float, check: Callable[[], bool], what: str) -> None:
    """``check`` stays true for ``seconds`` (several operator ticks of 0.3 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), what
        time.sleep(0.1)


def test_least_loaded_pod_drains_across_an_operator_restart_then_goes(
    cluster: Cluster, metrics_pods: Callable[[], MetricsPod]
) -> None:
    with running_operator():
        controller = three_pods(cluster, metrics_pods, drainGraceSeconds=3600)
        cluster.patch("pools", "news", {"spec": {"minReplicas": 1}})
        wait_for(lambda: DRAINING in annotations(cluster, "news-2"), what="the least-loaded pod marked draining")
        assert DRAINING not in annotations(cluster, "news-1") and DRAINING not in annotations(cluster, "news-3")
        wait_for(lambda: drain_status(cluster).get("pods") == ["news-2"], what="drain recorded in status")
        since = drain_status(cluster)["since"]
        # Its one stream is still live: replicas stay at 3, tick after tick.
        hold_for(2.0, lambda: replicas(cluster) == 3, "replicas lowered while the drained pod has a stream")
        assert last_scaling(cluster)["code"] == "Draining", last_scaling(cluster)
        assert "1 streams left on news-2" in last_scaling(cluster)["reason"]

    # A new operator process (no memory of the old one) finds the drain in status and on the pod.
    with running_operator():
        hold_for(1.5, lambda: replicas(cluster) == 3, "a restarted operator lowered replicas under a live stream")
        assert drain_status(cluster)["since"] == since
        assert DRAINING in annotations(cluster, "news-2")
        controller.pods["news-2"].streams = 0  # the stream ended (or moved)
        wait_for(lambda: replicas(cluster) == 2, what="replicas lowered once the drained pod is empty")
        assert cluster.get("pods", "news-2") is None  # deleted by name, not left to the ReplicaSet's choice
        assert {annotations(cluster, p)[COST] for p in ("news-1", "news-3")} == {"4", "3"}
        controller.sync()
        assert sorted(controller.pods) == ["news-1", "news-3"]
        wait_for(lambda: not drain_status(cluster), what="drain cleared from status")
        reasons = [e["reason"] for e in cluster.list("events")]
        assert "DrainStarted" in reasons and "ScaledDown" in reasons


def test_grace_period_bounds_the_wait(cluster: Cluster, metrics_pods: Callable[[], MetricsPod]) -> None:
    with running_operator():
        controller = three_pods(cluster, metrics_pods, drainGraceSeconds=2)
        cluster.patch("pools", "news", {"spec": {"minReplicas": 1}})
        wait_for(lambda: DRAINING in annotations(cluster, "news-2"), what="drain started")
        marked_at = time.monotonic()
        # The stream never ends: the pod goes when the grace has passed, not before.
        wait_for(lambda: replicas(cluster) == 2, timeout=10, what="replicas lowered after the grace")
        assert time.monotonic() - marked_at >= 1.5
        assert "grace of 2s passed with 1 streams left on news-2" in last_scaling(cluster)["reason"]
        controller.sync()
        assert "news-2" not in controller.pods


def test_the_drained_pod_goes_even_while_another_pod_is_pending(
    cluster: Cluster, metrics_pods: Callable[[], MetricsPod]
) -> None:
    # A ReplicaSet removes Pending, then not-Ready pods before it looks at pod-deletion-cost (the fake
    # controller ranks the same): lowering replicas alone would remove news-3 and keep the drained pod.
    with running_operator():
        controller = three_pods(cluster, metrics_pods, drainGraceSeconds=2)
        cluster.patch("pools", "news", {"spec": {"minReplicas": 1}})
        wait_for(lambda: DRAINING in annotations(cluster, "news-2"), what="drain started")
        pending = {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]}
        cluster.patch("pods", "news-3", {"status": pending}, sub="status")  # e.g. evicted and rescheduling
        wait_for(lambda: replicas(cluster) == 2, timeout=10, what="replicas lowered after the grace")
        controller.sync()
        assert sorted(controller.pods) == ["news-1", "news-3"]
        assert cluster.get("pods", "news-2") is None


def test_rising_load_undrains_instead_of_starting_a_pod(
    cluster: Cluster, metrics_pods: Callable[[], MetricsPod]
) -> None:
    with running_operator():
        controller = three_pods(cluster, metrics_pods, drainGraceSeconds=3600)
        cluster.patch("pools", "news", {"spec": {"minReplicas": 1}})
        wait_for(lambda: DRAINING in annotations(cluster, "news-2"), what="drain started")
        # Load returns: 4 + 1 + 4 = 9 streams over the 2 pods of 4 that would remain is 12% over the
        # target, beyond the tolerance, so the drained pod is wanted again (within it: drain goes on,
        # tests/unit/operator/test_drain_plan.py).
        controller.pods["news-3"].streams = 4
        wait_for(lambda: DRAINING not in annotations(cluster, "news-2"), what="drain mark removed")
        wait_for(lambda: not drain_status(cluster), what="drain cleared from status")
        # The undo is a scaling change the scale-down cooldown sees: no start/cancel flap.
        assert cluster.require("pools", "news").get("status", {}).get("lastScaleUpTime")
        assert last_scaling(cluster)["code"] in ("DrainCancelled", "WithinTolerance"), last_scaling(cluster)
        assert replicas(cluster) == 3  # no new pod: the drained one is capacity again
        assert any(e.get("reason") == "DrainCancelled" for e in cluster.list("events"))
        hold_for(1.0, lambda: replicas(cluster) == 3 and not drain_status(cluster), "pool moved after undrain")
