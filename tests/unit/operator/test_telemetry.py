"""The operator's own metrics (livedub.operator.telemetry): outcomes by class, per-pool gauges that go
away with their pool, and an HTTP server on its own thread that speaks the exposition format."""

import urllib.request

import kopf
import pytest
from prometheus_client.parser import text_string_to_metric_families

from livedub.operator import telemetry
from livedub.operator.errors import InvalidSpecError, KubernetesApiError, KubernetesApiRejected


def value(name: str, **labels: str) -> float:
    found = telemetry.REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (InvalidSpecError("bad"), "invalid_spec"),
        (KubernetesApiRejected("forbidden", status=403), "api_rejected"),
        (KubernetesApiError("conflict", status=409), "api_temporary"),
        (kopf.TemporaryError("later"), "api_temporary"),
        (RuntimeError("bug"), "unexpected"),
    ],
)
def test_a_failed_reconcile_is_counted_by_class_and_re_raised(exc: Exception, error: str) -> None:
    labels = {"kind": "DubbingPool", "trigger": "event"}
    before = value("livedub_operator_reconciles_total", **labels, outcome=error)
    errors_before = value("livedub_operator_errors_total", kind="DubbingPool", error=error)
    with pytest.raises(type(exc)), telemetry.reconciling("DubbingPool", "event"):
        raise exc
    assert value("livedub_operator_reconciles_total", **labels, outcome=error) == before + 1
    assert value("livedub_operator_errors_total", kind="DubbingPool", error=error) == errors_before + 1


def test_a_successful_reconcile_is_counted_and_timed() -> None:
    labels = {"kind": "VoiceProfile", "trigger": "timer"}
    before = value("livedub_operator_reconciles_total", **labels, outcome="success")
    timed = value("livedub_operator_reconcile_duration_seconds_count", **labels)
    with telemetry.reconciling("VoiceProfile", "timer"):
        pass
    assert value("livedub_operator_reconciles_total", **labels, outcome="success") == before + 1
    assert value("livedub_operator_reconcile_duration_seconds_count", **labels) == timed + 1


def test_pool_gauges_follow_the_last_decision_and_vanish_with_the_pool() -> None:
    pool = {"namespace": "news", "pool": "es"}
    ups = value("livedub_operator_scale_decisions_total", direction="up", reason="ScaledUp")
    telemetry.record_bounds("news", "es", replicas=2, min_replicas=1, max_replicas=8)
    load = telemetry.PoolLoad(
        desired_replicas=3, streams=110, capacity_streams=120, streams_waiting=4.5, pods_unreachable=0
    )
    telemetry.record_decision("news", "es", "up", "ScaledUp", load)
    telemetry.record_children({"Deployment": "updated", "Service": "unchanged"})
    assert value("livedub_operator_scale_decisions_total", direction="up", reason="ScaledUp") == ups + 1
    assert value("livedub_operator_pool_replicas", **pool) == 2
    assert value("livedub_operator_pool_min_replicas", **pool) == 1
    assert value("livedub_operator_pool_max_replicas", **pool) == 8
    assert value("livedub_operator_pool_desired_replicas", **pool) == 3
    assert value("livedub_operator_pool_streams", **pool) == 110
    assert value("livedub_operator_pool_capacity_streams", **pool) == 120
    assert value("livedub_operator_pool_streams_waiting", **pool) == 4.5
    assert value("livedub_operator_child_applies_total", kind="Deployment", outcome="updated") >= 1

    telemetry.forget_pool("news", "es")
    telemetry.forget_pool("news", "es")  # twice, or for a pool never seen: no error
    for name in ("pool_replicas", "pool_desired_replicas", "pool_streams", "pool_capacity_streams"):
        assert telemetry.REGISTRY.get_sample_value("livedub_operator_" + name, pool) is None


def test_server_answers_on_its_own_thread_in_the_exposition_format() -> None:
    server = telemetry.start(0, "127.0.0.1")  # port 0: any free one
    try:
        port = server.server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        server.stop()
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    # Declared families show before their first sample: `helm test` and dashboards can rely on them.
    assert families["livedub_operator_reconciles"] == "counter"
    assert families["livedub_operator_scale_decisions"] == "counter"
    assert families["livedub_operator_pool_replicas"] == "gauge"
    assert families["livedub_operator_reconcile_duration_seconds"] == "histogram"
    assert "process_cpu_seconds" in families
    assert not server.thread.is_alive()


def test_every_metric_of_ours_has_the_operator_prefix() -> None:
    for family in telemetry.REGISTRY.collect():
        if family.name.startswith(("process_", "python_")):
            continue
        assert family.name.startswith(telemetry.PREFIX), family.name
