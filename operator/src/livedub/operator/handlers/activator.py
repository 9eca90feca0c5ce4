"""Scale from zero: an HTTP endpoint that turns a connection attempt into an activation request.

A pool with ``minReplicas: 0`` at zero replicas has no pod to measure and no pod to refuse a stream,
so nothing in ``/metrics`` can wake it (before issue 12 it stayed at zero: ``NoReadyPods``). The
operator listens on ``LIVEDUB_OPERATOR_ACTIVATOR_PORT`` (the chart's ``<release>-activator``
Service) and answers two kinds of request:

* ``POST /activate/<namespace>/<pool>`` — a pending-stream signal from whatever knows a stream is
  waiting (a dispatcher, an ingress error hook, ``livedub dub`` after a refused connection);
* any other request whose ``Host`` is ``<pool>.<namespace>.svc[.cluster.local]`` — a worker's
  Socket.IO connection attempt routed here while the pool has no endpoints (an ingress
  ``default-backend``, or a selectorless Service pointing here; docs/operator.md).

Both annotate the pool with ``dubbing.livedub.io/activation-requested`` (the time) and answer 503
with ``Retry-After`` and a retryable ``POD_STARTING`` body: the worker reconnects once the pod is up.
The pool's tick reads the annotation, so any operator replica may take the request and the active
one acts on it. The annotation is the only state: a restart loses nothing.
"""

import logging
import re

from aiohttp import web

from livedub.operator import client as api
from livedub.operator import constants as c
from livedub.operator.client import connect
from livedub.operator.errors import KubernetesApiError
from livedub.operator.handlers.pool_status import now_iso

log = logging.getLogger(__name__)
RETRY_AFTER_S = 10
_HOST = re.compile(r"^(?P<pool>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.(?P<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc(\.|$|:)")


def pool_of_host(host: str) -> tuple[str, str] | None:
    """``(namespace, pool)`` from a Service host name, or None for anything else."""
    match = _HOST.match(host.lower())
    return None if match is None else (match["ns"], match["pool"])


async def request_activation(namespace: str, pool: str) -> bool:
    """Annotate the pool; False when there is no such pool."""
    patch = {"metadata": {"annotations": {c.ANNOTATION_ACTIVATION: now_iso()}}}
    async with connect() as client:
        if await client.get(api.POOLS, namespace, pool) is None:
            return False
        await client.patch(api.POOLS, namespace, pool, patch)
    return True


def _starting(namespace: str, pool: str) -> web.Response:
    body = {
        "code": "POD_STARTING",
        "retryable": True,
        "retry_after_ms": RETRY_AFTER_S * 1000,
        "message": f"pool {namespace}/{pool} is starting a pod; reconnect",
    }
    return web.json_response(body, status=503, headers={"Retry-After": str(RETRY_AFTER_S)})


async def _activate(namespace: str, pool: str) -> web.Response:
    try:
        found = await request_activation(namespace, pool)
    except KubernetesApiError as exc:
        log.warning("activation of %s/%s failed: %s", namespace, pool, exc)
        return web.json_response({"code": "SERVICE_UNAVAILABLE", "retryable": True}, status=503)
    if not found:
        return web.json_response({"code": "NOT_FOUND", "retryable": False}, status=404)
    log.info("activation requested for %s/%s", namespace, pool)
    return _starting(namespace, pool)


async def _explicit(request: web.Request) -> web.Response:
    return await _activate(request.match_info["namespace"], request.match_info["pool"])


async def _connection_attempt(request: web.Request) -> web.Response:
    target = pool_of_host(request.host)
    if target is None:
        return web.json_response({"code": "NOT_FOUND", "retryable": False}, status=404)
    return await _activate(*target)


def build_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/activate/{namespace}/{pool}", _explicit)
    app.router.add_route("*", "/{tail:.*}", _connection_attempt)
    return app


async def start(port: int, host: str = "0.0.0.0") -> web.AppRunner:  # a Service reaches it
    runner = web.AppRunner(build_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("activator listening on %s:%d", host, port)
    return runner
