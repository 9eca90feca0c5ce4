"""VoiceProfile -> pool through kopf's index (no listing of every pool) and the model-cache claim's
access-mode check, with real kopf against the emulated API."""

from typing import Any

from kopf_harness import Cluster, wait_for
from test_pool_lifecycle import pool, voice


def test_a_voice_change_reconciles_only_the_pools_that_use_it_without_listing_pools(
    cluster: Cluster, operator: Any
) -> None:
    cluster.create("voices", voice("ana"))
    cluster.create("pools", pool("news", voiceProfiles=["ana"]))
    cluster.create("pools", pool("sport"))
    for name in ("news", "sport"):
        wait_for(lambda n=name: cluster.get("configmaps", f"{n}-voices"), what=f"{name} ConfigMap")  # type: ignore[misc]
    sport_before = cluster.require("configmaps", "sport-voices")["metadata"]["resourceVersion"]
    ours_before = [r for r in cluster.api.lists if "dubbingpools" in r[0] and "kopf" not in r[1].lower()]

    cluster.patch("voices", "ana", {"spec": {"gender": "neutral"}})
    wait_for(
        lambda: '"neutral"' in cluster.require("configmaps", "news-voices")["data"]["voices.json"],
        what="the user's voices re-rendered",
    )
    wait_for(lambda: (cluster.require("voices", "ana").get("status") or {}).get("usedBy") == ["news"], what="usedBy")
    assert cluster.require("configmaps", "sport-voices")["metadata"]["resourceVersion"] == sport_before
    ours_after = [r for r in cluster.api.lists if "dubbingpools" in r[0] and "kopf" not in r[1].lower()]
    assert ours_after == ours_before, ours_after  # the index answered; the operator's client never listed pools


def claim(name: str, *modes: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": "20Gi"}}},
    }


def degraded(cluster: Cluster, name: str) -> dict[str, Any]:
    conditions = (cluster.require("pools", name).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Degraded"), {})


def test_a_read_write_once_model_cache_for_many_replicas_is_a_degraded_condition(
    cluster: Cluster, operator: Any
) -> None:
    cluster.create("pvcs", claim("cache-rwo", "ReadWriteOnce"))
    cluster.create("pvcs", claim("cache-rox", "ReadOnlyMany"))
    cluster.create("pools", pool("news", maxReplicas=4, modelCache={"claimName": "cache-rwo"}))
    cluster.create("pools", pool("sport", maxReplicas=4, modelCache={"claimName": "cache-rox"}))
    cluster.create("pools", pool("solo", minReplicas=1, maxReplicas=1, modelCache={"claimName": "cache-rwo"}))

    cond = wait_for(
        lambda: (
            degraded(cluster, "news") if degraded(cluster, "news").get("reason") == "ModelCacheAccessMode" else None
        ),
        what="ModelCacheAccessMode condition",
    )
    assert cond["status"] == "True" and "ReadWriteMany" in cond["message"] and "'cache-rwo'" in cond["message"]
    assert cluster.require("pools", "news")["status"]["phase"] == "Degraded"
    for fine in ("sport", "solo"):
        wait_for(lambda f=fine: degraded(cluster, f).get("reason") == "AsExpected", what=f"{fine} not degraded")  # type: ignore[misc]
    # Several ticks later: still one Warning, not one per tick.
    wait_for(lambda: (cluster.require("pools", "news")["status"].get("lastScaling") or {}).get("code"), what="a tick")
    warnings = [e for e in cluster.list("events") if e.get("reason") == "ModelCacheAccessMode"]
    assert len(warnings) == 1, warnings
