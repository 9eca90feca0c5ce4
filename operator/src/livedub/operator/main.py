"""kopf registration: every ``@kopf.on.*`` of the operator, each delegating to ``handlers/``.

Run with ``kopf run -m livedub.operator.main --all-namespaces`` (the chart's command). Settings come
from ``LIVEDUB_OPERATOR_*`` and are read once, at import, so a bad value stops the operator before
it touches the cluster.
"""

import logging
import random
from typing import Any

import kopf

from livedub.operator import client as api
from livedub.operator import telemetry
from livedub.operator.constants import GROUP, POOL_KIND, POOL_PLURAL, VERSION, VOICE_KIND, VOICE_PLURAL
from livedub.operator.errors import KubernetesApiError
from livedub.operator.handlers import activator, handle_autoscale, handle_pool, handle_voice
from livedub.operator.settings import load_settings

SETTINGS = load_settings()
# Pools whose ticks run at least this far apart see `usedBy` refreshed on their voices.
VOICE_USAGE_INTERVAL_S = 60.0


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Peering (`--peering NAME`, the chart's default): replicas pause all but the highest-priority
    # one. A random priority per process makes "highest" unique, kopf's documented way to run
    # more than one replica safely.
    settings.peering.priority = (
        SETTINGS.peering_priority if SETTINGS.peering_priority is not None else random.randint(1, 32767)
    )
    settings.watching.server_timeout = SETTINGS.watch_timeout_s
    settings.posting.level = logging.INFO  # Events for info and up; debug noise stays in logs
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    # Namespaced operators (--namespace) meet in a KopfPeering per namespace, which the admin
    # creates (docs/operator.md); the cluster-wide one is ours to create.
    if settings.peering.mandatory and settings.peering.clusterwide and not settings.peering.standalone:
        await ensure_peering(settings.peering.name)
    if SETTINGS.activator_port:
        memo["activator"] = await activator.start(SETTINGS.activator_port)
    if SETTINGS.metrics_port:
        # A thread of its own (prometheus_client's HTTP server): scrapes never wait on the event loop.
        memo["metrics"] = telemetry.start(SETTINGS.metrics_port)


@kopf.on.cleanup()
async def stop_servers(memo: kopf.Memo, **_: Any) -> None:
    runner = memo.get("activator")
    if runner is not None:
        await runner.cleanup()
    metrics = memo.get("metrics")
    if metrics is not None:
        metrics.stop()


async def ensure_peering(name: str) -> None:
    """Create the ClusterKopfPeering object replicas meet in (kopf does not create it itself)."""
    async with api.connect() as client:
        try:
            body = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
            await client.create(api.CLUSTER_PEERINGS, None, body)
        except KubernetesApiError as exc:
            if exc.status == 404:
                message = "kopf.dev CRDs are missing: install the chart with crds.enabled=true"
                raise kopf.PermanentError(message) from exc
            if exc.status != 409:  # 409: it exists (another replica, or an earlier run)
                raise


@kopf.on.login()
async def login(**_: Any) -> kopf.ConnectionInfo:
    # One credential source for kopf and for our client (kopf would otherwise piggyback on
    # kubernetes_asyncio with KUBECONFIG as it was at import). kopf calls this again on a 401,
    # so re-reading picks up rotated service-account or exec-plugin tokens.
    info: kopf.ConnectionInfo = api.connection_info(await api.load_configuration(reload=True))
    return info


@kopf.on.create(GROUP, VERSION, POOL_PLURAL)
@kopf.on.update(GROUP, VERSION, POOL_PLURAL)
@kopf.on.resume(GROUP, VERSION, POOL_PLURAL)
async def pool_reconcile(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    with telemetry.reconciling(POOL_KIND, "event"):
        await handle_pool.reconcile_pool(body, patch)


@kopf.on.event(GROUP, VERSION, POOL_PLURAL)
async def pool_event(type: str, name: str, namespace: str | None, **_: Any) -> None:
    if type == "DELETED" and namespace:
        telemetry.forget_pool(namespace, name)


@kopf.timer(GROUP, VERSION, POOL_PLURAL, interval=SETTINGS.autoscale_interval_s, sharp=True)
async def pool_tick(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    with telemetry.reconciling(POOL_KIND, "timer"):
        await handle_autoscale.tick(body, patch, memo, SETTINGS)


@kopf.index(GROUP, VERSION, POOL_PLURAL)
async def pools_by_voice(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[tuple[str, str], str]:
    # In memory, fed by kopf's watch: a VoiceProfile change finds its pools without listing them all.
    return handle_voice.pools_using(namespace or "", name, spec)


@kopf.on.create(GROUP, VERSION, VOICE_PLURAL)
@kopf.on.update(GROUP, VERSION, VOICE_PLURAL)
@kopf.on.resume(GROUP, VERSION, VOICE_PLURAL)
async def voice_changed(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
    # kopf hands every handler the index by its name; its handler protocols know it only as **kwargs.
    with telemetry.reconciling(VOICE_KIND, "event"):
        await handle_voice.voice_changed(body, patch, kwargs["pools_by_voice"])


@kopf.on.event(GROUP, VERSION, VOICE_PLURAL)
async def voice_event(type: str, name: str, namespace: str | None, **kwargs: Any) -> None:
    if type == "DELETED" and namespace:
        await handle_voice.voice_deleted(name, namespace, kwargs["pools_by_voice"])


@kopf.timer(GROUP, VERSION, VOICE_PLURAL, interval=VOICE_USAGE_INTERVAL_S, initial_delay=5)
async def voice_usage(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
    await handle_voice.refresh_usage(body, patch, kwargs["pools_by_voice"])
