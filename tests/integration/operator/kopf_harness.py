"""Test harness: an in-memory Kubernetes API (kmock + our gaps) and loopback pod /metrics servers,
each on a background event loop; the operator itself runs in kopf's KopfRunner thread.

The test functions are synchronous on purpose: three loops (API, operator, test) never block one
another, and a test waits by polling the API with a deadline, never by sleeping a fixed time.
"""

import asyncio
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import kmock
from aiohttp import web

# Operator settings are read once, when livedub.operator.main is imported (by KopfRunner's -m):
# fast ticks so scaling shows within a second or two.
os.environ.setdefault("LIVEDUB_OPERATOR_AUTOSCALE_INTERVAL_S", "0.3")
os.environ.setdefault("LIVEDUB_OPERATOR_SCRAPE_TIMEOUT_S", "0.5")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The scale-from-zero endpoint, on a port of its own per test process.
ACTIVATOR_PORT = int(os.environ.setdefault("LIVEDUB_OPERATOR_ACTIVATOR_PORT", str(_free_port())))
# The operator's own /metrics, likewise.
METRICS_PORT = int(os.environ.setdefault("LIVEDUB_OPERATOR_METRICS_PORT", str(_free_port())))
logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # one line per request drowns the rest
if "livedub.operator.main" in sys.modules:  # pragma: no cover  # a unit test imported it first
    raise RuntimeError("livedub.operator.main imported before the integration settings were set")

sys.path.insert(0, str(Path(__file__).parent))
from kube_emulator import KubeEmulator  # noqa: E402

T = TypeVar("T")
GROUP_VERSION = "dubbing.livedub.io/v1alpha1"
RESOURCES = {
    "dubbing.livedub.io/v1alpha1/dubbingpools": ("DubbingPool", {"status", "scale"}),
    "dubbing.livedub.io/v1alpha1/voiceprofiles": ("VoiceProfile", {"status"}),
    "apps/v1/deployments": ("Deployment", {"status", "scale"}),
    "v1/services": ("Service", {"status"}),
    "v1/configmaps": ("ConfigMap", set()),
    "v1/pods": ("Pod", {"status"}),
    "v1/persistentvolumeclaims": ("PersistentVolumeClaim", {"status"}),
    "v1/events": ("Event", set()),
    "policy/v1/poddisruptionbudgets": ("PodDisruptionBudget", {"status"}),
    # kopf's own backbone: it watches CRDs and namespaces and waits until discovery shows them.
    "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", {"status"}),
    "v1/namespaces": ("Namespace", {"status"}),
}
CLUSTER_SCOPED = {"apiextensions.k8s.io/v1/customresourcedefinitions", "v1/namespaces"}
PATHS = {
    "pools": f"/apis/{GROUP_VERSION}/namespaces/{{ns}}/dubbingpools",
    "voices": f"/apis/{GROUP_VERSION}/namespaces/{{ns}}/voiceprofiles",
    "deployments": "/apis/apps/v1/namespaces/{ns}/deployments",
    "services": "/api/v1/namespaces/{ns}/services",
    "configmaps": "/api/v1/namespaces/{ns}/configmaps",
    "pods": "/api/v1/namespaces/{ns}/pods",
    "pvcs": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    "events": "/api/v1/namespaces/{ns}/events",
    "pdbs": "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
}


class Background:
    """An event loop in a daemon thread; ``run`` executes a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Cluster:
    """The emulated API server plus a small typed-less client for the tests' own reads/writes."""

    def __init__(self, bg: Background) -> None:
        self.bg = bg
        self.api = KubeEmulator()
        self.server = kmock.Server(self.api)

    async def start(self) -> None:
        await self.api.__aenter__()
        await self.server.__aenter__()
        for key, (kind, subresources) in RESOURCES.items():
            self.api.resources[key] = kmock.ResourceInfo(
                kind=kind,
                namespaced=key not in CLUSTER_SCOPED,
                subresources=subresources,
                verbs={"list", "watch", "get", "create", "patch", "update", "delete"},
            )
        self.session = aiohttp.ClientSession(str(self.server.url))

    async def stop(self) -> None:
        await self.session.close()
        await self.server.__aexit__(None, None, None)
        await self.api.__aexit__(None, None, None)

    @property
    def url(self) -> str:
        return str(self.server.url).rstrip("/")

    async def _request(self, method: str, path: str, body: Any = None, ctype: str = "application/json") -> Any:
        data = None if body is None else json.dumps(body)
        async with self.session.request(method, path, data=data, headers={"Content-Type": ctype}) as resp:
            payload = await resp.json(content_type=None)
            if resp.status == 404:
                return None
            assert resp.status < 300, (method, path, resp.status, payload)
            return payload

    def get(self, kind: str, name: str, ns: str = "default") -> dict[str, Any] | None:
        path = f"{PATHS[kind].format(ns=ns)}/{name}"
        found: dict[str, Any] | None = self.bg.run(self._request("GET", path))
        return found

    def require(self, kind: str, name: str, ns: str = "default") -> dict[str, Any]:
        """The object, or KeyError (which ``wait_for`` treats as "not yet")."""
        found = self.get(kind, name, ns)
        if found is None:
            raise KeyError(f"{kind}/{name}")
        return found

    def list(self, kind: str, ns: str = "default", selector: str | None = None) -> list[dict[str, Any]]:
        path = PATHS[kind].format(ns=ns) + (f"?labelSelector={selector}" if selector else "")
        return list(self.bg.run(self._request("GET", path))["items"])

    def create(self, kind: str, body: dict[str, Any], ns: str = "default") -> dict[str, Any]:
        return self.bg.run(self._request("POST", PATHS[kind].format(ns=ns), body))

    def patch(self, kind: str, name: str, body: dict[str, Any], ns: str = "default", sub: str = "") -> Any:
        path = f"{PATHS[kind].format(ns=ns)}/{name}" + (f"/{sub}" if sub else "")
        return self.bg.run(self._request("PATCH", path, body, "application/merge-patch+json"))

    def delete(self, kind: str, name: str, ns: str = "default") -> None:
        self.bg.run(self._request("DELETE", f"{PATHS[kind].format(ns=ns)}/{name}"))


class MetricsPod:
    """A loopback HTTP server standing in for one runtime pod's ``/metrics``."""

    def __init__(self, bg: Background) -> None:
        self.bg = bg
        self.in_flight = 0.0
        self.queue_depth = 0.0
        self.streams = 0.0
        self.streams_refused = 0.0
        # Stream refusals added at every scrape: workers that keep being refused while it is full.
        self.refusals_per_scrape = 0.0
        self.backpressure: dict[str, float] = {}
        self.alive = True

    async def _metrics(self, _: web.Request) -> web.Response:
        if not self.alive:
            raise web.HTTPServiceUnavailable()
        self.streams_refused += self.refusals_per_scrape
        lines = [
            "# TYPE sts_fragments_in_flight gauge",
            f"sts_fragments_in_flight {self.in_flight}",
            "# TYPE sts_queue_depth gauge",
            f"sts_queue_depth {self.queue_depth}",
            "# TYPE sts_streams_active gauge",
            f"sts_streams_active {self.streams}",
            "# TYPE sts_streams_refused_total counter",
            f"sts_streams_refused_total {self.streams_refused}",
            "# TYPE sts_backpressure_events_total counter",
        ] + [f'sts_backpressure_events_total{{severity="{s}"}} {v}' for s, v in self.backpressure.items()]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        await self.runner.cleanup()


def wait_for(check: Callable[[], T | None], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll until ``check`` returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, KeyError, TypeError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}")
