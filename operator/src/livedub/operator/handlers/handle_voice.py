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


def _uses(pool: dict[str, Any], voice: str) -> bool:
    return voice in ((pool.get("spec") or {}).get("voiceProfiles") or [])


async def users_of(client: Client, namespace: str, voice: str) -> list[dict[str, Any]]:
    pools = await client.list(api.POOLS, namespace)
    return sorted((p for p in pools if _uses(p, voice)), key=lambda p: str(p["metadata"]["name"]))


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


async def voice_changed(body: kopf.Body, patch: kopf.Patch) -> None:
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    try:
        parse_voice_spec(body.get("spec"))
    except InvalidSpecError as exc:
        patch.status["message"] = str(exc)
        kopf.warn(body, reason="InvalidSpec", message=str(exc))
        raise
    async with connect() as client:
        pools = await users_of(client, namespace, name)
        await refresh_pools(client, pools)
    patch.status["message"] = ""
    patch.status["usedBy"] = [p["metadata"]["name"] for p in pools]


async def voice_deleted(name: str, namespace: str) -> None:
    """A deleted profile disappears from its pools' voices files (they report it as missing)."""
    async with connect() as client:
        await refresh_pools(client, await users_of(client, namespace, name))


async def refresh_usage(body: kopf.Body, patch: kopf.Patch) -> None:
    async with connect() as client:
        pools = await users_of(client, body["metadata"]["namespace"], body["metadata"]["name"])
    used_by = [p["metadata"]["name"] for p in pools]
    if used_by != (body.get("status") or {}).get("usedBy"):
        patch.status["usedBy"] = used_by
