"""Warm-floor schedules through real kopf and the emulated API: an active window raises the floor;
a bad cron expression is a clear InvalidSpec condition, and the operator keeps running."""

from collections.abc import Callable
from typing import Any

from kopf_harness import Cluster, MetricsPod, wait_for
from test_autoscaling import FakeDeploymentController, last_scaling, replicas, scaling_pool

# Opens every minute and closes on 1 January: active whenever this test runs (but New Year's midnight).
ALWAYS = {"name": "news", "start": "* * * * *", "end": "0 0 1 1 *", "minReplicas": 3}


def test_an_active_schedule_warms_the_pool_to_its_floor(
    cluster: Cluster, operator: Any, metrics_pods: Callable[[], MetricsPod]
) -> None:
    cluster.create("pools", scaling_pool(schedules=[ALWAYS]))
    wait_for(lambda: replicas(cluster) >= 1, what="Deployment created")
    FakeDeploymentController(cluster, metrics_pods).sync()  # one idle pod: no demand asks for more
    wait_for(lambda: replicas(cluster) == 3, what="scale-up to the schedule's floor")
    wait_for(lambda: last_scaling(cluster).get("code") == "BelowMinReplicas", what="decision recorded")
    assert "schedule news (3)" in last_scaling(cluster)["reason"]


def test_a_bad_cron_is_an_invalid_spec_condition_not_a_crash(cluster: Cluster, operator: Any) -> None:
    bad = {**ALWAYS, "start": "99 * * * *"}
    cluster.create("pools", scaling_pool(schedules=[bad]))

    def invalid() -> dict[str, Any] | None:
        status = cluster.require("pools", "news").get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
        return ready if ready and ready["reason"] == "InvalidSpec" else None

    ready = wait_for(invalid, what="InvalidSpec condition")
    assert ready["status"] == "False"
    assert "autoscaling.schedules.0" in ready["message"] and "'99 * * * *' is not a five-field cron" in ready["message"]
    # Fixing the spec heals the pool: the operator was never stuck.
    cluster.patch("pools", "news", {"spec": {"autoscaling": {"schedules": [ALWAYS]}}})
    wait_for(lambda: replicas(cluster) == 3, what="the fixed schedule applies")
