"""VoiceProfile changes: validate, re-render the voices of every pool that uses the profile, and
record which pools use it (``status.usedBy``)."""

import logging
from typing import Any

import kopf

from livedub.operator import client as api
from livedub.operator.client import Client, connect
from livedub.operator.errors import InvalidSpecError
from livedub.operator.handlers.handle_pool import announce
from livedub.operator.handlers.reconcile import reconcile_children
from livedub.operator.spec import parse_pool_spec, parse_voice_spec

log = logging.getLogger(__name__)


def pools_using(namespace: str, name: str, spec: Any) -> dict[tuple[str, str], str]:
    """The kopf index of pools by the VoiceProfiles they use: ``(namespace, voice) -> pool``."""
    return {(namespace, voice): name for voice in (spec or {}).get("voiceProfiles") or []}


async def users_of(client: Client, namespace: str, voice: str, index: Any) -> list[dict[str, Any]]:
    """The pools the index says use ``voice``, each read by name (no list of every pool)."""
    names = sorted(set(index.get((namespace, voice), [])))
    pools = [await client.get(api.POOLS, namespace, pool) for pool in names]
    # The index follows the watch: a pool dropped the voice, or is gone, by the time it is read.
    return [p for p in pools if p is not None and voice in ((p.get("spec") or {}).get("voiceProfiles") or [])]


async def refresh_pools(client: Client, pools: list[dict[str, Any]]) -> None:
    for raw in pools:
        if raw["metadata"].get("deletionTimestamp"):
            continue
        try:
            spec = parse_pool_spec(raw.get("spec"))
        except InvalidSpecError:
            continue  # that pool's own status already says why
        body = kopf.Body(raw)  # type: ignore[arg-type]  # a listed object is a raw body
        announce(body, await reconcile_children(client, body, spec))


async def voice_changed(body: kopf.Body, patch: kopf.Patch, index: Any) -> None:
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    try:
        parse_voice_spec(body.get("spec"))
    except InvalidSpecError as exc:
        patch.status["message"] = str(exc)
        kopf.warn(body, reason="InvalidSpec", message=str(exc))
        raise
    async with connect() as client:
        pools = await users_of(client, namespace, name, index)
        await refresh_pools(client, pools)
    patch.status["message"] = ""
    patch.status["usedBy"] = [p["metadata"]["name"] for p in pools]


async def voice_deleted(name: str, namespace: str, index: Any) -> None:
    """A deleted profile disappears from its pools' voices files (they report it as missing)."""
    async with connect() as client:
        await refresh_pools(client, await users_of(client, namespace, name, index))


async def refresh_usage(body: kopf.Body, patch: kopf.Patch, index: Any) -> None:
    async with connect() as client:
        pools = await users_of(client, body["metadata"]["namespace"], body["metadata"]["name"], index)
    used_by = [p["metadata"]["name"] for p in pools]
    if used_by != (body.get("status") or {}).get("usedBy"):
        patch.status["usedBy"] = used_by
