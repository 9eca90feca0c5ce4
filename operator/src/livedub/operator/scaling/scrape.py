"""Find a pool's serving pods and read their ``/metrics`` concurrently with a short timeout.

Serving, not Ready: a pod's readiness means "takes new streams" (``/ready/streams``), so a full pod is
not Ready while it carries its streams — skipping it would hide exactly the load that asks for more
pods. Whether its models are loaded comes from its own ``sts_ready`` (``observe`` leaves out pods that
are not, so a pod whose models failed to load is never counted as capacity).

The scrape address comes from the pod's Prometheus annotations (which the Deployment builder sets),
so the autoscaler reads exactly what Prometheus reads; a pod that is slow, refuses, or returns junk
is reported as unreachable (``None``), never as idle.
"""

import asyncio
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from livedub.operator import constants as c
from livedub.operator.scaling.metrics import MetricsParseError, PodMetrics, parse_metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScrapeTarget:
    pod: str
    url: str


def _is_serving(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if pod.get("metadata", {}).get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    # Started: past its startup probe (the port answers), whether or not it takes new streams now.
    containers = status.get("containerStatuses") or []
    return all(cs.get("started", True) for cs in containers)


def scrape_target(pod: Mapping[str, Any], default_port: int) -> ScrapeTarget | None:
    """The pod's metrics URL, or None when the pod is not serving yet (or is being deleted)."""
    if not _is_serving(pod):
        return None
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return None
    annotations = pod.get("metadata", {}).get("annotations") or {}
    port = int(annotations.get(c.ANNOTATION_SCRAPE_PORT, default_port))
    path = annotations.get(c.ANNOTATION_SCRAPE_PATH, "/metrics")
    scheme = annotations.get(c.ANNOTATION_SCRAPE_SCHEME, "http")
    host = f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
    return ScrapeTarget(pod=pod["metadata"]["name"], url=f"{scheme}://{host}:{port}{path}")


async def _scrape_one(
    session: aiohttp.ClientSession, target: ScrapeTarget, limits: aiohttp.ClientTimeout
) -> PodMetrics | None:
    try:
        async with session.get(target.url, timeout=limits) as resp:
            resp.raise_for_status()
            return parse_metrics(await resp.text())
    except (aiohttp.ClientError, TimeoutError, MetricsParseError) as exc:
        log.info("pod %s unreachable for metrics at %s: %r", target.pod, target.url, exc)
        return None


async def scrape_all(
    targets: Iterable[ScrapeTarget], *, timeout_s: float, concurrency: int
) -> dict[str, PodMetrics | None]:
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    limit = asyncio.Semaphore(concurrency)
    targets = list(targets)

    async def bounded(session: aiohttp.ClientSession, target: ScrapeTarget) -> PodMetrics | None:
        async with limit:
            return await _scrape_one(session, target, timeout)

    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(*(bounded(session, t) for t in targets))
    return {t.pod: r for t, r in zip(targets, results, strict=True)}
