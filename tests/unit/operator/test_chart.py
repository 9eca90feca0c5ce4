"""The Helm chart: renders offline (helm-python-sdk, the Helm v4 SDK), every rendered object passes
kubernetes-validate --strict, values.schema.json rejects bad values, lint is clean, and the chart's
CRD copies match crds/ byte for byte."""

import importlib.util
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from chart_render import CHART, by_kind, helm, render
from crd_schema import ROOT

K8S_VERSION = "1.30.0"
# Kinds the Kubernetes schemas do not know (custom resources of other projects).
FOREIGN = {"monitoring.coreos.com/v1"}


VARIANTS = {
    "defaults": None,
    "everything": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "operator": {"namespaces": ["news", "sports"], "logLevel": "debug", "peeringName": ""},
        "crds": {"enabled": False},
        "replicaCount": 2,
        "imagePullSecrets": [{"name": "regcred"}],
        "nodeSelector": {"role": "system"},
        "podAnnotations": {"a": "b"},
        "priorityClassName": "high",
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn"}},
        "fullnameOverride": "dub-op",
        "prometheusRule": {"enabled": True, "labels": {"release": "prom"}, "alertLabels": {"team": "media"}},
        "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "livedub"}, "namespace": "monitoring"},
        "networkPolicy": {
            "enabled": True,
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
            "activatorFrom": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}}}],
        },
    },
    "nothing-optional": {"metrics": {"enabled": False}, "activator": {"enabled": False}, "nameOverride": "dub"},
}


@pytest.mark.parametrize("values", VARIANTS.values(), ids=VARIANTS.keys())
def test_rendered_chart_is_strictly_valid(values: dict[str, Any] | None) -> None:
    docs = render(values)
    assert docs
    for doc in docs:
        if doc["apiVersion"] in FOREIGN:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_defaults_install_crds_with_keep_policy() -> None:
    docs = render()
    crds = {d["metadata"]["name"]: d for d in by_kind(docs, "CustomResourceDefinition")}
    assert set(crds) == {
        "dubbingpools.dubbing.livedub.io",
        "voiceprofiles.dubbing.livedub.io",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }
    assert all(c["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for c in crds.values())
    assert by_kind(docs, "ServiceMonitor") == []
    (dep,) = by_kind(docs, "Deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" in args and "--peering=livedub-operator" in args
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_options_change_what_renders() -> None:
    docs = render(VARIANTS["everything"])
    assert by_kind(docs, "CustomResourceDefinition") == []
    monitors = {m["metadata"]["name"]: m for m in by_kind(docs, "ServiceMonitor")}
    assert set(monitors) == {"dub-op-runtime", "dub-op-operator"}  # fullnameOverride
    assert all(m["metadata"]["labels"]["release"] == "prom" for m in monitors.values())
    (dep,) = by_kind(docs, "Deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"--namespace=news", "--namespace=sports", "--standalone", "--verbose"} <= set(args)
    (role,) = by_kind(docs, "ClusterRole")
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert "namespaces" in resources and "clusterkopfpeerings" not in resources


def test_names_follow_name_and_fullname_overrides() -> None:
    docs = render({"nameOverride": "ops"})
    (dep,) = by_kind(docs, "Deployment")
    assert dep["metadata"]["name"] == "livedub-ops"
    assert dep["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "ops"
    names = {d["metadata"]["name"] for d in by_kind(render({"fullnameOverride": "x" * 63}), "Service")}
    # Truncated to 63 with the suffix kept: Service names are DNS labels.
    assert names == {"x" * 53 + "-activator", "x" * 55 + "-metrics"}
    assert all(len(n) <= 63 for n in names)


def test_metrics_port_is_wired_to_the_operator_and_off_when_disabled() -> None:
    def env_and_ports(values: dict[str, Any] | None) -> tuple[dict[str, str], set[str]]:
        (dep,) = by_kind(render(values), "Deployment")
        container = dep["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value") for e in container["env"]}, {p["name"] for p in container["ports"]}

    env, ports = env_and_ports(None)
    assert env["LIVEDUB_OPERATOR_METRICS_PORT"] == "8082" and "metrics" in ports
    env, ports = env_and_ports({"metrics": {"enabled": False}})
    assert env["LIVEDUB_OPERATOR_METRICS_PORT"] == "0" and "metrics" not in ports
    assert not [
        s for s in by_kind(render({"metrics": {"enabled": False}}), "Service") if "metrics" in s["metadata"]["name"]
    ]


def test_rbac_is_least_privilege() -> None:
    (role,) = by_kind(render(), "ClusterRole")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        if "deployments" in rule["resources"]:
            assert "delete" not in rule["verbs"]  # the garbage collector deletes children
    assert not any("secrets" in rule["resources"] for rule in role["rules"])


@pytest.mark.parametrize(
    "bad",
    [
        {"replicaCount": -1},
        {"image": {"pullPolicy": "Sometimes", "repository": "x"}},
        {"operator": {"autoscaleIntervalSeconds": 0}},
        {"serviceMonitor": {"interval": "often"}},
        {"serviceMonitor": {"podTargetLabels": "dubbing.livedub.io/pool"}},
        {"metrics": {"port": 8080}},
        {"nameOverride": "Not_A_DNS_Label"},
        {"prometheusRule": {"rejectedFragmentRatio": 2}},
        {"prometheusRule": {"atMaxReplicasFor": "a while"}},
        {"grafanaDashboard": {"labels": {"grafana_dashboard": 1}}},
        {"networkPolicy": {"metricsFrom": [{"everyone": True}]}},
        {"typo": True},
    ],
)
def test_values_schema_rejects_bad_values(bad: dict[str, Any]) -> None:
    chart = helm.Chart.load(str(CHART))
    chart.validate_schema(chart.merge_values({}))  # the defaults themselves pass
    with pytest.raises(helm.HelmError):
        chart.validate_schema(chart.merge_values(bad))


def test_lint_is_clean() -> None:
    report = helm.lint(str(CHART), strict=True, kube_version=f"v{K8S_VERSION}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def _sync_module() -> Any:
    spec = importlib.util.spec_from_file_location("sync_chart_crds", ROOT / "hack" / "sync-chart-crds.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chart_crds_match_source() -> None:
    assert _sync_module().drift() == [], "run: python hack/sync-chart-crds.py"


def test_drift_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sync = _sync_module()
    source, target = tmp_path / "crds", tmp_path / "copy"
    source.mkdir()
    (source / "a.yaml").write_text("a: 1\n")
    monkeypatch.setattr(sync, "SOURCE", source)
    monkeypatch.setattr(sync, "TARGET", target)
    assert sync.drift() == ["a.yaml: differs or missing"]
    sync.sync()
    assert sync.drift() == []
    (target / "a.yaml").write_text("a: 2\n")
    (target / "old.yaml").write_text("")
    assert sync.drift() == ["a.yaml: differs or missing", "old.yaml: not in crds/"]
