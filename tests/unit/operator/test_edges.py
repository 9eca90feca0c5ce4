"""Issue-12 edges without a cluster: API errors that must not be retried, the missing-VoiceProfile
Event posted once, activation requests, and the simulator's cluster model on tiny cases."""

import sys
from pathlib import Path
from typing import Any

import kopf
import pytest
from kubernetes_asyncio import client as k8s

# bench/ lives at the repository root, outside the installed packages; appended, so it shadows nothing.
sys.path.append(str(Path(__file__).resolve().parents[3]))
from bench import autoscale
from livedub.operator.client import POOLS, Client
from livedub.operator.errors import KubernetesApiError, KubernetesApiRejected
from livedub.operator.handlers.activator import pool_of_host
from livedub.operator.handlers.handle_autoscale import activation_requested
from livedub.operator.handlers.handle_pool import missing_changed
from livedub.operator.scaling.decide import Policy


class RefusingApi:
    def __init__(self, status: int) -> None:
        self.status = status

    async def call_api(self, *_: Any, **__: Any) -> Any:
        raise k8s.ApiException(status=self.status, reason="refused")


@pytest.mark.parametrize(("status", "permanent"), [(403, True), (422, True), (400, True), (409, False), (500, False)])
async def test_forbidden_and_invalid_are_permanent(status: int, permanent: bool) -> None:
    client = Client(RefusingApi(status))  # type: ignore[arg-type]  # only call_api is used
    with pytest.raises((KubernetesApiRejected, KubernetesApiError)) as caught:
        await client.patch(POOLS, "ns", "p", {})
    assert isinstance(caught.value, kopf.PermanentError) is permanent
    assert caught.value.status == status  # type: ignore[union-attr]


def body(**status: Any) -> kopf.Body:
    raw = {"metadata": {"name": "p", "namespace": "ns", "annotations": status.pop("annotations", {})}, "status": status}
    return kopf.Body(raw)  # type: ignore[arg-type]  # a plain dict as kopf would hold it


def test_missing_voice_profile_event_only_when_the_missing_set_changes() -> None:
    degraded = {
        "type": "Degraded",
        "status": "True",
        "reason": "VoiceProfileMissing",
        "message": "missing VoiceProfiles: a",
    }
    assert missing_changed(body(), ["a"])  # first time: post
    assert not missing_changed(body(conditions=[degraded]), ["a"])  # the next ticks: quiet
    assert missing_changed(body(conditions=[degraded]), ["a", "b"])  # news: post again


def test_activation_counts_only_after_the_last_scale_down() -> None:
    key = "dubbing.livedub.io/activation-requested"
    assert not activation_requested(body())
    assert activation_requested(body(annotations={key: "2026-12-01T10:00:00Z"}))
    old = body(annotations={key: "2026-12-01T10:00:00Z"}, lastScaleDownTime="2026-12-01T11:00:00Z")
    assert not activation_requested(old)  # that request was served before the pool went back to zero


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("news.default.svc", ("default", "news")),
        ("news-es.media.svc.cluster.local:8000", ("media", "news-es")),
        ("example.com", None),
        ("127.0.0.1:8081", None),
    ],
)
def test_pool_from_the_service_host(host: str, expected: tuple[str, str] | None) -> None:
    assert pool_of_host(host) == expected


def test_simulated_cluster_places_refuses_retries_and_moves() -> None:
    policy = Policy(min_replicas=1, max_replicas=4, streams_per_pod=2, retry_after_s=10)
    cluster = autoscale.Cluster(policy, startup_s=5, seed=0)
    cluster.scale_to(1, 0.0)  # warm at t = 0
    cluster.start_streams(3, 1.0)
    assert [p.streams for p in cluster.pods] == [2]
    assert cluster.pods[0].refused == 1 and len(cluster.retries) == 1  # full pod refuses the third
    cluster.scale_to(2, 1.0)
    cluster.step_retries(20.0)  # the retry (5-15 s later) finds the new pod, ready at 6 s
    assert sorted(p.streams for p in cluster.pods) == [1, 2] and not cluster.retries
    cluster.deletion_cost = {p.name: p.streams for p in cluster.pods}
    cluster.scale_to(1, 21.0)  # the least-loaded pod goes; its stream moves and is refused (full)
    assert cluster.forced_reconnects == 1 and [p.streams for p in cluster.pods] == [2]
    assert len(cluster.retries) == 1
    assert autoscale.oracle_replicas(5, policy) == 3


def test_simulated_dense_streams_overload_their_pod_and_stay_dense_when_they_move() -> None:
    policy = Policy(min_replicas=1, max_replicas=4, streams_per_pod=4, retry_after_s=10)
    cluster = autoscale.Cluster(policy, startup_s=5, seed=0, heavy_share=1.0)
    cluster.scale_to(1, 0.0)
    cluster.start_streams(3, 1.0)  # admitted by count (3 of 4), loaded like 6
    pod = cluster.pods[0]
    assert (pod.streams, pod.heavy, pod.load) == (3, 3, 6)
    pod.step_backlog(cluster.capacity)
    assert pod.backlog == 2 / autoscale.FRAGMENT_S  # 2 streams' worth of fragments a 6 s fragment late
    for _ in range(600):
        pod.step_backlog(cluster.capacity)
    assert pod.in_flight == 3 * autoscale.MAX_INFLIGHT  # the rest of the lag waits on the workers
    cluster.shed(pod.name, autoscale.rebalance.ShedMark(2, 3, 1.0), 1.0)
    cluster.step_moves(1.0 + autoscale.FRAGMENT_S + autoscale.RECONNECT_S)
    # No other pod: the first stream to move waits (the pod takes none while it sheds), still dense;
    # the second finds the pod done shedding and comes back.
    assert (pod.streams, pod.heavy) == (2, 2) and [r[2] for r in cluster.retries] == [True]
    lag = pod.lag_s
    pod.remove(cluster.rng)  # a stream that ends takes its share of the lag with it
    assert pod.lag_s == lag - lag // 2 and (pod.streams, pod.heavy) == (1, 1)
    pod.take(True)
    cluster.clear_shed(pod.name)
    cluster.scale_to(2, 10.0)
    cluster.step_retries(40.0)
    assert sum(p.heavy for p in cluster.pods) == 3 and sum(p.load for p in cluster.pods) == 6
    pod.streams, pod.heavy, pod.lag_s = 2, 1, 6  # load 3 of 4: it catches up, 1 / 6 fragment a second
    for _ in range(6):
        pod.step_backlog(cluster.capacity)
    assert pod.backlog == 0
