"""Plain HTTP endpoints: liveness, readiness, metrics, and a small info document.

``/health`` answers as soon as the process listens (Kubernetes liveness must not fail while models
load); ``/ready`` only once models are loaded and warmed up, and while not draining (readiness gates
traffic, so the first listener gets steady-state latency); ``/ready/streams`` only while the pod also
takes new streams (server/placement.py: the operator's readiness probe);
``/metrics`` is Prometheus text. None of them reveals stream content.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from livedub.runtime.server.keys import SERVICE_KEY, WARM_KEY


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "healthy"})


async def ready(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    if service.ready and request.app[WARM_KEY].is_set():
        return web.json_response({"status": "ready", "engines": service.engines.describe() if service.engines else {}})
    reason = "draining" if service.draining else "loading" if service.pipeline is None else "warming up"
    return web.json_response({"status": "not_ready", "reason": reason}, status=503)


async def ready_for_streams(request: web.Request) -> web.Response:
    """The pod's readiness probe under the operator: 200 only while it takes new streams, so the
    Service routes new connections to pods with room (established connections are not affected)."""
    service = request.app[SERVICE_KEY]
    state = service.placement.state()
    body = {
        "status": state,
        "streams": service.stream_count(),
        "max_streams": service.settings.max_pod_streams,
    }
    return web.json_response(body, status=200 if state == "accepting" else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[SERVICE_KEY].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/ready/streams", ready_for_streams)
    app.router.add_get("/metrics", metrics)
