"""A pool's children: created with owner references, updated from VoiceProfiles, repaired,
reported, and gone with the pool. Real kopf against the emulated API."""

from typing import Any

from kopf_harness import Cluster, wait_for

API = "dubbing.livedub.io/v1alpha1"


def pool(name: str, **spec: Any) -> dict[str, Any]:
    spec = {"authTokensSecretRef": {"name": "workers"}, **spec}
    return {"apiVersion": API, "kind": "DubbingPool", "metadata": {"name": name}, "spec": spec}


def voice(name: str, language: str = "es", gender: str = "female") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "VoiceProfile",
        "metadata": {"name": name},
        "spec": {
            "language": language,
            "gender": gender,
            "referenceAudio": {"configMapKeyRef": {"name": "voices-audio", "key": f"{name}.wav"}},
        },
    }


def owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    refs = obj["metadata"].get("ownerReferences") or []
    return any(r["uid"] == owner["metadata"]["uid"] and r.get("controller") for r in refs)


def test_create_pool_makes_owned_children_and_status(cluster: Cluster, operator: Any) -> None:
    cluster.create("voices", voice("ana"))
    created = cluster.create("pools", pool("news", minReplicas=2, maxReplicas=5, voiceProfiles=["ana"]))

    dep = wait_for(lambda: cluster.get("deployments", "news"), what="Deployment")
    svc = wait_for(lambda: cluster.get("services", "news"), what="Service")
    cm = wait_for(lambda: cluster.get("configmaps", "news-voices"), what="ConfigMap")
    pdb = wait_for(lambda: cluster.get("pdbs", "news"), what="PodDisruptionBudget")
    for child in (dep, svc, cm, pdb):
        assert owned_by(child, created), child["metadata"]
    assert dep["spec"]["replicas"] == 2
    assert '"ana"' in cm["data"]["voices.json"]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready/streams"

    status = wait_for(
        lambda: (
            cluster.require("pools", "news")["status"]
            if cluster.require("pools", "news").get("status", {}).get("phase")
            else None
        ),
        what="pool status",
    )
    assert status["phase"] == "Pending"  # no pod is ready: nothing runs Deployments here
    assert status["selector"].startswith("app.kubernetes.io/instance=news")
    assert status["voiceProfiles"] == ["ana"]
    assert {c["type"] for c in status["conditions"]} >= {"Ready", "Progressing", "Degraded"}


def test_voice_profile_change_updates_configmap(cluster: Cluster, operator: Any) -> None:
    cluster.create("voices", voice("ana", gender="female"))
    cluster.create("pools", pool("news", voiceProfiles=["ana", "ben"]))
    wait_for(lambda: cluster.get("configmaps", "news-voices"), what="ConfigMap")
    wait_for(lambda: cluster.require("pools", "news")["status"]["phase"] == "Degraded", what="missing voice reported")

    cluster.patch("voices", "ana", {"spec": {"gender": "neutral"}})
    wait_for(
        lambda: '"neutral"' in cluster.require("configmaps", "news-voices")["data"]["voices.json"],
        what="ConfigMap updated",
    )
    cluster.create("voices", voice("ben", language="fr", gender="male"))
    wait_for(
        lambda: '"ben"' in cluster.require("configmaps", "news-voices")["data"]["voices.json"], what="new voice added"
    )
    dep = cluster.require("deployments", "news")
    assert any(v["name"] == "reference-audio" for v in dep["spec"]["template"]["spec"]["volumes"])
    wait_for(lambda: cluster.require("voices", "ana")["status"]["usedBy"] == ["news"], what="usedBy")

    cluster.delete("voices", "ben")
    wait_for(
        lambda: '"ben"' not in cluster.require("configmaps", "news-voices")["data"]["voices.json"],
        what="deleted voice removed",
    )


def test_invalid_pool_reports_why_and_creates_nothing(cluster: Cluster, operator: Any) -> None:
    cluster.create("pools", pool("bad", minReplicas=5, maxReplicas=2))
    status = wait_for(
        lambda: (
            cluster.require("pools", "bad")["status"]
            if cluster.require("pools", "bad").get("status", {}).get("phase") == "Failed"
            else None
        ),
        what="Failed status",
    )
    assert "minReplicas (5) must be <= maxReplicas (2)" in status["message"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InvalidSpec"
    assert cluster.get("deployments", "bad") is None
    events = cluster.list("events")
    assert any(e.get("reason") == "InvalidSpec" for e in events)

    # Fixing the spec recovers the pool.
    cluster.patch("pools", "bad", {"spec": {"minReplicas": 1}})
    wait_for(lambda: cluster.get("deployments", "bad"), what="Deployment after fix")


def test_drift_is_repaired_and_delete_cascades(cluster: Cluster, operator: Any) -> None:
    cluster.create("pools", pool("news"))
    wait_for(lambda: cluster.get("services", "news"), what="Service")
    cluster.patch("services", "news", {"spec": {"sessionAffinity": "ClientIP"}})
    wait_for(lambda: cluster.require("services", "news")["spec"]["sessionAffinity"] == "None", what="drift repaired")

    cluster.delete("pools", "news")
    for kind, name in [("deployments", "news"), ("services", "news"), ("configmaps", "news-voices"), ("pdbs", "news")]:
        wait_for(lambda k=kind, n=name: cluster.get(k, n) is None, what=f"{kind} gone")  # type: ignore[misc]
