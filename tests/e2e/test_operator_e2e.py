"""Against a real cluster with the operator installed: a CPU pool becomes a Deployment, Service,
ConfigMap and PDB owned by the pool, the scale subresource works, and deletion cascades.

With ``LIVEDUB_E2E_WAIT_READY=1`` (the runtime image is loadable by the cluster) it also waits for a
ready pod and scrapes nothing less than the real runtime's /metrics through the autoscaler.
"""

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import pytest

from livedub.operator import client as api
from livedub.operator.client import Client

pytestmark = pytest.mark.e2e
T = TypeVar("T")
NAMESPACE = os.environ.get("LIVEDUB_E2E_NAMESPACE", "livedub-e2e")
IMAGE = os.environ.get("LIVEDUB_E2E_IMAGE", "livedub-runtime:e2e-cpu")
WAIT_READY = os.environ.get("LIVEDUB_E2E_WAIT_READY") == "1"


async def eventually(check: Callable[[], Awaitable[T | None]], within_s: float, what: str) -> T:
    deadline = time.monotonic() + within_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last  # type: ignore[no-any-return]
        await asyncio.sleep(2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture
async def k8s() -> AsyncIterator[Client]:
    api.reset_configuration()
    async with api.connect() as client:
        yield client


async def test_pool_lifecycle_on_a_real_cluster(k8s: Client) -> None:
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    tokens = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"tokens": "e2e-token\n"}}
    await k8s.create(api.Kind("/api/v1", "secrets"), NAMESPACE, tokens)
    await k8s.create(
        api.VOICES,
        NAMESPACE,
        {
            "apiVersion": "dubbing.livedub.io/v1alpha1",
            "kind": "VoiceProfile",
            "metadata": {"name": name},
            "spec": {"language": "es", "gender": "female"},
        },
    )
    pool = await k8s.create(
        api.POOLS,
        NAMESPACE,
        {
            "apiVersion": "dubbing.livedub.io/v1alpha1",
            "kind": "DubbingPool",
            "metadata": {"name": name},
            "spec": {
                "image": IMAGE,
                "imagePullPolicy": "Never",
                "minReplicas": 1,
                "maxReplicas": 2,
                "asr": {"device": "cpu", "modelSize": "tiny", "computeType": "int8"},
                "tts": {"device": "cpu", "engine": "espeak"},
                "mt": {"engine": "apertium"},
                "resources": {"gpu": 0, "cpu": "500m", "memory": "2Gi"},
                "authTokensSecretRef": {"name": name},
                "voiceProfiles": [name],
            },
        },
    )
    try:
        uid = pool["metadata"]["uid"]
        for kind, child in [
            (api.DEPLOYMENTS, name),
            (api.SERVICES, name),
            (api.CONFIGMAPS, f"{name}-voices"),
            (api.PDBS, name),
        ]:
            obj = await eventually(partial(k8s.get, kind, NAMESPACE, child), 60, child)
            assert any(ref["uid"] == uid for ref in obj["metadata"]["ownerReferences"])

        status = await eventually(lambda: _status(k8s, name, lambda s: "observedGeneration" in s), 60, "pool status")
        assert status["selector"]
        if WAIT_READY:
            status = await eventually(
                lambda: _status(k8s, name, lambda s: s.get("readyReplicas", 0) >= 1), 600, "a ready pod"
            )
            status = await eventually(
                lambda: _status(k8s, name, lambda s: s.get("lastScaling", {}).get("podsScraped", 0) >= 1),
                60,
                "a scrape of the real /metrics",
            )
            assert status["lastScaling"]["podsUnreachable"] == 0
    finally:
        await k8s.delete(api.POOLS, NAMESPACE, name)
        await k8s.delete(api.VOICES, NAMESPACE, name)
        await k8s.delete(api.Kind("/api/v1", "secrets"), NAMESPACE, name)
    await eventually(lambda: _gone(k8s, name), 120, "children garbage-collected")


async def _status(k8s: Client, name: str, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    pool = await k8s.get(api.POOLS, NAMESPACE, name)
    status = (pool or {}).get("status") or {}
    return status if ok(status) else None


async def _gone(k8s: Client, name: str) -> bool:
    return (
        await k8s.get(api.DEPLOYMENTS, NAMESPACE, name) is None
        and await k8s.get(api.CONFIGMAPS, NAMESPACE, f"{name}-voices") is None
    )
