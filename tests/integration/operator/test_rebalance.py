"""Rebalance after a scale-up: real kopf against the emulated API, pods backed by loopback /metrics.

A pod past its capacity or behind (``rebalanceAbove: capacity``, the default; ``target``: above its
target's band too) is marked ``dubbing.livedub.io/shed-streams`` with the streams it should shed
(bounded by the room on the other pods and by the per-tick cap); the mark lives on the pod, so a
restarted operator carries on, and comes off once the pod shed them, or after the timeout.
"""

import time
from collections.abc import Callable

from kopf_harness import Cluster, MetricsPod, wait_for
from test_autoscaling import FakeDeploymentController, replicas, scaling_pool
from test_drain import annotations, running_operator

from livedub.operator.telemetry import REGISTRY

SHED = "dubbing.livedub.io/shed-streams"


def three_pods(
    cluster: Cluster,
    metrics_pods: Callable[[], MetricsPod],
    streams: tuple[int, int, int] = (10, 2, 3),
    **autoscaling: object,
) -> list[MetricsPod]:
    # 10 streams per pod aimed at 80 %: a target of 8, over it beyond 8.8. 10 + 2 + 3 streams over
    # 3 pods is below the pool's target, and minReplicas holds the 3 pods: only placement is wrong.
    # (By default the busy pod must be past 10, or behind, to shed.)
    spec = scaling_pool(maxStreamsPerPod=10, targetUtilization=0.8, **autoscaling)
    spec["spec"]["minReplicas"] = 3
    cluster.create("pools", spec)
    wait_for(lambda: replicas(cluster) == 3, what="three pods")
    busy, light, middle = FakeDeploymentController(cluster, metrics_pods).sync()
    busy.streams, light.streams, middle.streams = streams
    busy.in_flight, light.in_flight, middle.in_flight = 4, 1, 1
    return [busy, light, middle]


def counted(name: str, **labels: str) -> float:
    """A counter on the operator's own /metrics registry (the operator runs in this process)."""
    return REGISTRY.get_sample_value(f"livedub_operator_{name}", labels) or 0.0


def shed_value(cluster: Cluster, pod: str) -> str | None:
    return annotations(cluster, pod).get(SHED)


def test_a_pod_past_its_capacity_is_asked_to_shed_down_to_the_target_and_the_mark_outlives_an_operator_restart(
    cluster: Cluster, metrics_pods: Callable[[], MetricsPod]
) -> None:
    shed_before, streams_before = (
        counted("rebalance_decisions_total", action="shed"),
        counted("rebalance_streams_total"),
    )
    done_before = counted("rebalance_decisions_total", action="done")
    with running_operator():
        # 12 streams on a pod of 10 (a race admitted two more): the default sheds it.
        busy, _, _ = three_pods(cluster, metrics_pods, streams=(12, 2, 3))
        wait_for(lambda: shed_value(cluster, "news-1") is not None, what="the busy pod marked to shed")
        value = shed_value(cluster, "news-1")
        assert value is not None and value.startswith("4;from=12;at="), value  # 12 down to the target of 8
        assert shed_value(cluster, "news-2") is None and shed_value(cluster, "news-3") is None
        assert any(e["reason"] == "Rebalancing" for e in cluster.list("events"))
        assert counted("rebalance_decisions_total", action="shed") == shed_before + 1
        assert counted("rebalance_streams_total") == streams_before + 4

    with running_operator():
        # A new operator finds the request on the pod and neither repeats nor drops it.
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert shed_value(cluster, "news-1") == value
            time.sleep(0.1)
        busy.streams = 8  # the runtime moved four streams away
        wait_for(lambda: shed_value(cluster, "news-1") is None, what="the mark taken off once shed")
        time.sleep(1.0)  # several ticks: at its target, it is not marked again
        assert shed_value(cluster, "news-1") is None
        assert replicas(cluster) == 3
        assert counted("rebalance_decisions_total", action="done") == done_before + 1
        assert counted("rebalance_decisions_total", action="shed") == shed_before + 1  # never asked twice


def test_the_per_tick_cap_and_the_timeout_bound_a_request(
    cluster: Cluster, metrics_pods: Callable[[], MetricsPod]
) -> None:
    with running_operator():
        # rebalanceAbove: target: 10 streams is above the band of 8.8, though within capacity.
        three_pods(
            cluster, metrics_pods, rebalanceAbove="target", rebalanceMaxStreamsPerTick=1, rebalanceTimeoutSeconds=10
        )
        wait_for(lambda: shed_value(cluster, "news-1") is not None, what="the busy pod marked to shed")
        first = shed_value(cluster, "news-1")
        assert first is not None and first.startswith("1;from=10;"), first
        marked_at = time.monotonic()
        # A runtime that never sheds: the request stands until the timeout, then a new one is made.
        wait_for(lambda: shed_value(cluster, "news-1") != first, timeout=20, what="the request timed out")
        assert time.monotonic() - marked_at >= 8
        wait_for(lambda: shed_value(cluster, "news-1") not in (None, first), timeout=5, what="a new request")


def test_no_room_elsewhere_no_request(cluster: Cluster, metrics_pods: Callable[[], MetricsPod]) -> None:
    with running_operator():
        # Every other pod at its target: moving would only push them over.
        three_pods(cluster, metrics_pods, streams=(10, 8, 8))
        time.sleep(2.0)
        assert all(shed_value(cluster, p) is None for p in ("news-1", "news-2", "news-3"))


def test_by_default_a_full_pod_that_keeps_up_keeps_its_streams_until_it_falls_behind(
    cluster: Cluster, metrics_pods: Callable[[], MetricsPod]
) -> None:
    with running_operator():
        busy, _, _ = three_pods(cluster, metrics_pods)  # 10 of 10, 0.4 in flight per stream
        time.sleep(2.0)  # several ticks, with room for 11 on the other pods
        assert all(shed_value(cluster, p) is None for p in ("news-1", "news-2", "news-3"))
        busy.in_flight = 30  # 3 per stream against the limit of 2: it keeps up with 2 / 3 of its 10
        wait_for(lambda: shed_value(cluster, "news-1") is not None, what="the pod behind marked to shed")
        value = shed_value(cluster, "news-1")
        assert value is not None and value.startswith("4;from=10;"), value
