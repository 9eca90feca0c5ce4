"""What the chart ships for Prometheus and Grafana, checked with Prometheus' own tool.

``promtool check rules`` parses the rendered PrometheusRule's PromQL; ``promtool test rules`` feeds it
synthetic series and proves each alert fires when it should and stays quiet otherwise (including
its labels and rendered annotations). The dashboard's panel queries are wrapped as recording rules
and checked the same way. Every metric name either references is one the runtime or the operator
really exports (their registries are the source), so a rename cannot leave an alert silently dead.

promtool comes from Debian's ``prometheus`` package (hack/install.sh, dev target). Without it these
tests skip locally and fail in CI (``CI=true``).
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from chart_render import CHART, by_kind, render

from livedub.operator import telemetry
from livedub.runtime.metrics import Metrics

NAMESPACE = "livedub-system"
VALUES = {
    "prometheusRule": {"enabled": True, "alertLabels": {"team": "media"}},
    "serviceMonitor": {"enabled": True},
    "grafanaDashboard": {"enabled": True},
}


def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("promtool is missing: CI installs Debian's prometheus package (hack/install.sh dev)")
    pytest.skip("promtool not installed (apt-get install prometheus)")


def run_promtool(*args: str, cwd: Path) -> str:
    proc = subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    return output


def exported_names() -> set[str]:
    """Every sample name the runtime's and the operator's registries can expose."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "info": ("_info",)}
    names = set()
    for registry in (Metrics().registry, telemetry.REGISTRY):
        for family in registry.collect():
            names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


METRIC = re.compile(r"\b(sts_[a-z_]+|livedub_operator_[a-z_]+)\b")


def assert_known_metrics(expr: str) -> None:
    unknown = set(METRIC.findall(expr)) - exported_names()
    assert not unknown, f"{unknown} in {expr!r} is exported by neither the runtime nor the operator"


# --- PrometheusRule -------------------------------------------------------------------------------

RULE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string"},
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["alert", "expr", "labels", "annotations"],
                                    "properties": {
                                        "alert": {"type": "string", "pattern": "^Livedub[A-Za-z]+$"},
                                        "expr": {"type": "string"},
                                        "for": {"type": "string", "pattern": "^[0-9]+[smh]$"},
                                        "labels": {
                                            "type": "object",
                                            "required": ["severity"],
                                            "properties": {"severity": {"enum": ["critical", "warning", "info"]}},
                                            "additionalProperties": {"type": "string"},
                                        },
                                        "annotations": {
                                            "type": "object",
                                            "required": ["summary", "description"],
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def rule_groups(values: dict[str, Any] = VALUES) -> dict[str, Any]:
    (rule,) = by_kind(render(values), "PrometheusRule")
    jsonschema.validate(rule, RULE_SCHEMA)
    return {"groups": rule["spec"]["groups"]}


def test_prometheus_rule_is_off_by_default_and_labelled_for_the_prometheus_selector() -> None:
    assert by_kind(render(), "PrometheusRule") == []
    (rule,) = by_kind(render({"prometheusRule": {"enabled": True, "labels": {"release": "kps"}}}), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    # The operator-down alert needs the operator's own ServiceMonitor (its job label).
    assert "LivedubOperatorDown" not in alerts


def test_rules_pass_promtool_check_and_read_only_exported_metrics(tmp_path: Path) -> None:
    groups = rule_groups()
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups))
    assert "SUCCESS" in run_promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    alerts = [r for g in groups["groups"] for r in g["rules"]]
    assert {r["alert"] for r in alerts} == set(EXPECTED_ALERTS)
    for rule in alerts:
        assert_known_metrics(rule["expr"])
        assert rule["labels"]["team"] == "media"  # alertLabels reach every alert


OPERATOR = 'job="livedub-livedub-operator-metrics", instance="10.0.0.5:8082"'


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    return {"series": name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}", "values": values}


def operator_series(name: str, values: str, pool: str) -> dict[str, str]:
    return {"series": f'{name}{{{OPERATOR}, namespace="news", pool="{pool}"}}', "values": values}


def alert(labels: dict[str, str], summary: str, description: str) -> dict[str, Any]:
    return {
        "exp_labels": {"team": "media", **labels},
        "exp_annotations": {"summary": summary, "description": description},
    }


def at_max_case() -> dict[str, Any]:
    pools = {  # replicas, min, max over 30 minutes (one sample a minute)
        "full": ("4x30", "1x30", "4x30"),  # at max all along: fires once `for` (15m) has passed
        "fixed": ("2x30", "2x30", "2x30"),  # min == max: always "at max", nothing to alert on
        "roomy": ("2x30", "1x30", "4x30"),
        "brief": ("4x10 2x20", "1x30", "4x30"),  # at max for 10 minutes only
    }
    input_series = []
    for pool, (cur, lo, hi) in pools.items():
        input_series += [
            operator_series("livedub_operator_pool_replicas", cur, pool),
            operator_series("livedub_operator_pool_min_replicas", lo, pool),
            operator_series("livedub_operator_pool_max_replicas", hi, pool),
        ]
    fired = alert(
        {"namespace": "news", "pool": "full", "severity": "warning"},
        "DubbingPool news/full has been at maxReplicas for a while",
        "The pool runs 4 pods, its maxReplicas: the autoscaler cannot add capacity. Raise maxReplicas or add "
        "GPU nodes before streams are refused.",
    )
    return {
        "input_series": input_series,
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": "LivedubPoolAtMaxReplicas", "exp_alerts": []},
            {"eval_time": "20m", "alertname": "LivedubPoolAtMaxReplicas", "exp_alerts": [fired]},
        ],
    }


def over_capacity_case() -> dict[str, Any]:
    def pod(pool: str, name: str, streams: str, accepting: str) -> list[dict[str, str]]:
        labels = {"namespace": "news", "pool": pool, "pod": name}
        return [series("sts_streams_active", streams, **labels), series("sts_accepting_streams", accepting, **labels)]

    input_series = (
        pod("full", "full-1", "60x20", "0x20")
        + pod("full", "full-2", "60x20", "0x20")
        + pod("room", "room-1", "60x20", "0x20")  # one pod full, the other still takes streams
        + pod("room", "room-2", "10x20", "1x20")
        + pod("idle", "idle-1", "0x20", "0x20")  # loading, but no stream is waiting for it
    )
    fired = alert(
        {"namespace": "news", "pool": "full", "severity": "critical"},
        "No pod of DubbingPool news/full accepts new streams",
        "120 live streams and no pod below MAX_POD_STREAMS: new streams are refused POD_FULL until a pod frees "
        "up or starts.",
    )
    return {
        "input_series": input_series,
        "alert_rule_test": [
            {"eval_time": "3m", "alertname": "LivedubPoolOverCapacity", "exp_alerts": []},
            {"eval_time": "10m", "alertname": "LivedubPoolOverCapacity", "exp_alerts": [fired]},
        ],
    }


def refusals_case() -> dict[str, Any]:
    labels = {"namespace": "news", "pod": "p-1"}
    fired = alert(
        {"namespace": "news", "pool": "busy", "severity": "warning"},
        "DubbingPool news/busy keeps refusing new streams",
        "166.7m stream refusals per second (POD_FULL) for 10 minutes: check the pool's lastScaling reason "
        "(AtMaxReplicas, pods not starting).",
    )
    return {
        "input_series": [
            # 10 a minute, for ever
            series("sts_streams_refused_total", "0+10x30", pool="busy", reason="full", **labels),
            # A pod leaving the pool (or shedding streams) refuses while others have room: not demand.
            series("sts_streams_refused_total", "0+10x30", pool="shrinking", reason="leaving", **labels),
            series("sts_streams_refused_total", "0+10x30", pool="balancing", reason="shedding", **labels),
            series("sts_streams_refused_total", "5x30", pool="calm", **labels),  # refused once, long ago
            series("sts_streams_refused_total", "0+10x5 50x25", pool="burst", **labels),  # a 5-minute burst
        ],
        "alert_rule_test": [
            {"eval_time": "8m", "alertname": "LivedubStreamsRefused", "exp_alerts": []},
            {"eval_time": "25m", "alertname": "LivedubStreamsRefused", "exp_alerts": [fired]},
        ],
    }


def rejections_and_deadlines_case() -> dict[str, Any]:
    def pool(name: str, done: str, rejected: str, misses: str) -> list[dict[str, str]]:
        labels = {"namespace": "news", "pool": name, "pod": f"{name}-1"}
        return [
            series("sts_fragments_total", done, status="ok", **labels),
            series("sts_fragments_rejected_total", rejected, code="BACKPRESSURE_EXCEEDED", **labels),
            series("sts_deadline_misses_total", misses, **labels),
        ]

    input_series = (
        pool("rejecting", "0+100x30", "0+5x30", "0x30")  # 5 of 105 fragments rejected
        + pool("late", "0+100x30", "0x30", "0+10x30")  # 10 % answered past their deadline
        + pool("fine", "0+100x30", "0+0.5x30", "0+1x30")  # 0.5 % rejected, 1 % late: below both ratios
        + pool("silent", "0x30", "0x30", "0x30")  # no traffic: 0/0, no alert
    )
    rejected = alert(
        {"namespace": "news", "pool": "rejecting", "severity": "warning"},
        "DubbingPool news/rejecting rejects fragments",
        "4.762% of fragments rejected before processing (sts_fragments_rejected_total by code: "
        "BACKPRESSURE_EXCEEDED means overload).",
    )
    late = alert(
        {"namespace": "news", "pool": "late", "severity": "warning"},
        "DubbingPool news/late misses stream deadlines",
        "10% of fragments answered TIMEOUT because their stream's deadline came first: the pods are behind real time.",
    )
    return {
        "input_series": input_series,
        "alert_rule_test": [
            {"eval_time": "8m", "alertname": "LivedubFragmentsRejected", "exp_alerts": []},
            {"eval_time": "20m", "alertname": "LivedubFragmentsRejected", "exp_alerts": [rejected]},
            {"eval_time": "20m", "alertname": "LivedubDeadlineMisses", "exp_alerts": [late]},
        ],
    }


def pods_case() -> dict[str, Any]:
    labels = {"namespace": "news", "pool": "gpu"}
    models = alert(
        {**labels, "pod": "gpu-1", "severity": "critical"},
        "Pod news/gpu-1 of pool gpu has no models loaded",
        "sts_ready has been 0 for a long time: model loading failed or hangs (kubectl logs: ModelLoadError; "
        "check modelCache, the GPU, DeepL keys).",
    )
    down = alert(
        {**labels, "pod": "gpu-3", "severity": "warning"},
        "Prometheus cannot scrape pod news/gpu-3 of pool gpu",
        "The runtime's /metrics does not answer; the operator's autoscaler does not see this pod either (it "
        "counts it as unreachable and will not scale down).",
    )
    return {
        "input_series": [
            series("sts_ready", "0x30", pod="gpu-1", **labels),  # models never loaded
            series("sts_ready", "0x5 1x25", pod="gpu-2", **labels),  # loaded after 5 minutes: normal
            series("up", "1x30", pod="gpu-1", **labels),
            series("up", "1x30", pod="gpu-2", **labels),
            series("up", "1x2 0x28", pod="gpu-3", **labels),
            series("up", "0x30", job="kubelet", instance="node-1"),  # not a runtime target (no pool)
        ],
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": "LivedubPodModelsNotLoaded", "exp_alerts": []},
            {"eval_time": "20m", "alertname": "LivedubPodModelsNotLoaded", "exp_alerts": [models]},
            {"eval_time": "20m", "alertname": "LivedubRuntimeTargetDown", "exp_alerts": [down]},
        ],
    }


def operator_case() -> dict[str, Any]:
    errors = alert(
        {"kind": "DubbingPool", "error": "api_rejected", "severity": "warning"},
        "The livedub operator keeps failing to reconcile DubbingPool (api_rejected)",
        "api_rejected: RBAC or an object the API refuses; api_temporary: the API server; unexpected: a bug "
        "(operator logs). Invalid specs are reported in each pool's status instead.",
    )
    down = alert(
        {"severity": "critical"},  # absent() of a comparison carries no labels
        "The livedub operator is not running (or not scraped)",
        "No pool is reconciled or autoscaled while it is down; pools keep their current replicas.",
    )
    op = {"job": "livedub-livedub-operator-metrics", "instance": "10.0.0.5:8082"}
    return {
        "input_series": [
            series("livedub_operator_errors_total", "0+1x40", kind="DubbingPool", error="api_rejected", **op),
            # A user's bad spec is the pool's status, not a page.
            series("livedub_operator_errors_total", "0+1x40", kind="DubbingPool", error="invalid_spec", **op),
            series("up", "1x5 0x35", namespace=NAMESPACE, **op),
        ],
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": "LivedubOperatorReconcileErrors", "exp_alerts": []},
            {"eval_time": "30m", "alertname": "LivedubOperatorReconcileErrors", "exp_alerts": [errors]},
            {"eval_time": "10m", "alertname": "LivedubOperatorDown", "exp_alerts": []},
            {"eval_time": "20m", "alertname": "LivedubOperatorDown", "exp_alerts": [down]},
        ],
    }


EXPECTED_ALERTS = {
    "LivedubPoolAtMaxReplicas": at_max_case,
    "LivedubPoolOverCapacity": over_capacity_case,
    "LivedubStreamsRefused": refusals_case,
    "LivedubFragmentsRejected": rejections_and_deadlines_case,
    "LivedubDeadlineMisses": rejections_and_deadlines_case,
    "LivedubPodModelsNotLoaded": pods_case,
    "LivedubRuntimeTargetDown": pods_case,
    "LivedubOperatorReconcileErrors": operator_case,
    "LivedubOperatorDown": operator_case,
}


def test_each_alert_fires_when_it_should_and_not_otherwise(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_groups()))
    cases = [{"interval": "1m", **case()} for case in dict.fromkeys(EXPECTED_ALERTS.values())]
    tested = {t["alertname"] for case in cases for t in case["alert_rule_test"]}
    assert tested == set(EXPECTED_ALERTS), "every alert needs a promtool case"
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": cases}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    assert "SUCCESS" in run_promtool("test", "rules", "tests.yaml", cwd=tmp_path)


def test_thresholds_come_from_values(tmp_path: Path) -> None:
    values = {**VALUES, "prometheusRule": {"enabled": True, "rejectedFragmentRatio": 0.2, "notReadyFor": "30m"}}
    rules = {r["alert"]: r for g in rule_groups(values)["groups"] for r in g["rules"]}
    assert rules["LivedubFragmentsRejected"]["expr"].rstrip().endswith("> 0.2")
    assert rules["LivedubPodModelsNotLoaded"]["for"] == "30m"


# --- Grafana dashboard ----------------------------------------------------------------------------

DASHBOARD = CHART / "files" / "dashboards" / "livedub-pools.json"


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f"panel_{p['id']}_{t['refId']}", t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]


def as_prometheus(expr: str) -> str:
    """Grafana's variables as Prometheus sees them once Grafana has substituted them."""
    return expr.replace("$__rate_interval", "5m").replace("$namespace", ".*").replace("$pool", ".*")


def test_dashboard_ships_in_a_labelled_configmap_only_when_enabled() -> None:
    assert by_kind(render(), "ConfigMap") == []
    (cm,) = by_kind(render(VALUES), "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    (name,) = cm["data"]
    assert json.loads(cm["data"][name]) == json.loads(DASHBOARD.read_text())


def test_dashboard_covers_streams_in_flight_latency_errors_and_replicas() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    exprs = " ".join(expr for _, expr in panel_queries(dashboard))
    for needle in (
        "sts_streams_active",
        "sts_fragments_in_flight",
        "histogram_quantile(0.95, sum by (namespace, pool, le) (rate(sts_fragment_processing_seconds_bucket",
        "sts_fragment_errors_total",
        "livedub_operator_pool_replicas",
    ):
        assert needle in exprs


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    queries = panel_queries(json.loads(DASHBOARD.read_text()))
    rules = [{"record": f"livedub:dashboard:{name}", "expr": as_prometheus(expr)} for name, expr in queries]
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert "SUCCESS" in run_promtool("check", "rules", "dashboard.yaml", cwd=tmp_path)
    for _, expr in queries:
        assert_known_metrics(expr)


# --- ServiceMonitors ------------------------------------------------------------------------------


def test_service_monitors_label_runtime_series_with_their_pool_and_keep_operator_labels() -> None:
    monitors = {m["metadata"]["name"]: m for m in by_kind(render(VALUES), "ServiceMonitor")}
    runtime = monitors["livedub-livedub-operator-runtime"]["spec"]
    assert runtime["podTargetLabels"] == ["app.kubernetes.io/instance", "dubbing.livedub.io/pool"]
    (relabel,) = runtime["endpoints"][0]["relabelings"]
    assert relabel["targetLabel"] == "pool"
    assert relabel["sourceLabels"] == ["__meta_kubernetes_pod_label_dubbing_livedub_io_pool"]
    operator = monitors["livedub-livedub-operator-operator"]["spec"]
    assert operator["endpoints"][0]["port"] == "metrics" and operator["endpoints"][0]["honorLabels"] is True
    (service,) = [s for s in by_kind(render(VALUES), "Service") if s["metadata"]["name"].endswith("-metrics")]
    assert operator["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
