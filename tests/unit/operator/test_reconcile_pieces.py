"""Small pure pieces of reconciliation: drift comparison, replica bounds, conditions, targets."""

from typing import Any

import pytest

from livedub.operator.builders.status import rollout_conditions, set_condition
from livedub.operator.errors import InvalidSpecError
from livedub.operator.handlers.children import is_subset
from livedub.operator.handlers.reconcile import replicas_for
from livedub.operator.scaling.scrape import scrape_target
from livedub.operator.spec import parse_pool_spec


@pytest.mark.parametrize(
    ("desired", "actual", "same"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),  # extra server-side fields are not drift
        ({"a": {"b": [1, 2]}}, {"a": {"b": [1, 2]}}, True),
        ({"a": {"b": [1, 2]}}, {"a": {"b": [2, 1]}}, False),
        ({"a": []}, {}, True),  # the API server drops empty lists
        ({"a": {}}, {"a": None}, True),
        ({"a": [1]}, {}, False),
        ({"port": 8000}, {"port": "8000"}, True),
        ({"cpu": "0.5", "memory": "1024Mi"}, {"cpu": "500m", "memory": "1Gi"}, True),  # canonical quantities
        ({"cpu": "1.5"}, {"cpu": "1"}, False),
        ({"image": "a:1"}, {"image": "a:2"}, False),
        ({"c": [{"name": "x", "image": "i"}]}, {"c": [{"name": "x", "image": "i", "tty": False}]}, True),
        ({"c": [{"name": "x", "image": "i"}]}, {"c": [{"name": "x", "image": "j"}]}, False),
    ],
)
def test_is_subset(desired: Any, actual: Any, same: bool) -> None:
    assert is_subset(desired, actual) is same


TOKENS = {"authTokensSecretRef": {"name": "workers"}}


def test_replicas_for_keeps_autoscaler_choice_within_bounds() -> None:
    spec = parse_pool_spec({"minReplicas": 2, "maxReplicas": 5, **TOKENS})
    assert replicas_for(spec, None) == 2
    assert replicas_for(spec, 4) == 4
    assert replicas_for(spec, 9) == 5
    assert replicas_for(spec, 0) == 2
    external = parse_pool_spec(
        {"minReplicas": 1, "maxReplicas": 5, "replicas": 3, "autoscaling": {"mode": "external"}, **TOKENS}
    )
    assert replicas_for(external, 1) == 3


def test_invalid_pool_spec_message_names_every_problem() -> None:
    with pytest.raises(InvalidSpecError) as exc:
        parse_pool_spec({"minReplicas": -1, "asr": {"modelSize": "huge"}})
    message = str(exc.value)
    assert "minReplicas" in message and "asr.modelSize" in message


def test_condition_transition_time_kept_when_status_unchanged() -> None:
    first = set_condition([], "Ready", "True", "PodsReady", "1/1", now="t1")
    again = set_condition(first, "Ready", "True", "PodsReady", "2/2", now="t2")
    assert again[0]["lastTransitionTime"] == "t1" and again[0]["message"] == "2/2"
    flipped = set_condition(again, "Ready", "False", "NoReadyPods", "0/2", now="t3")
    assert flipped[0]["lastTransitionTime"] == "t3"


@pytest.mark.parametrize(
    ("desired", "ready", "missing", "phase"),
    [
        (2, 0, [], "Pending"),
        (2, 1, [], "Running"),
        (2, 2, [], "Running"),
        (0, 0, [], "Running"),
        (2, 2, ["x"], "Degraded"),
    ],
)
def test_rollout_phase(desired: int, ready: int, missing: list[str], phase: str) -> None:
    got, conds = rollout_conditions([], desired=desired, ready=ready, missing_voices=missing, now="t", generation=3)
    assert got == phase
    by_type = {c["type"]: c for c in conds}
    assert by_type["Degraded"]["status"] == ("True" if missing else "False")
    assert by_type["Progressing"]["status"] == ("True" if ready < desired else "False")
    assert all(c["observedGeneration"] == 3 for c in conds)


def pod(ready: bool = True, ip: str = "10.0.0.5", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "annotations": annotations or {}},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_scrape_targets() -> None:
    target = scrape_target(pod(), 8000)
    assert target is not None and target.url == "http://10.0.0.5:8000/metrics"
    target = scrape_target(
        pod(
            ip="fd00::1",
            annotations={"prometheus.io/port": "9", "prometheus.io/scheme": "https", "prometheus.io/path": "/m"},
        ),
        8000,
    )
    assert target is not None and target.url == "https://[fd00::1]:9/m"
    # A full pod is not Ready (it takes no new streams) but carries load: it is scraped.
    assert scrape_target(pod(ready=False), 8000) is not None
    starting = pod(ready=False)
    starting["status"]["containerStatuses"] = [{"name": "runtime", "started": False}]
    assert scrape_target(starting, 8000) is None
    pending = pod()
    pending["status"]["phase"] = "Pending"
    assert scrape_target(pending, 8000) is None
    terminating = pod()
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert scrape_target(terminating, 8000) is None
