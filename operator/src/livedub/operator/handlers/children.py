"""Create-or-patch one child object, touching the API only when something we own differs.

"What we own" is every field the builder sets: the live object may carry more (server defaults,
other controllers' annotations) and that is not drift. When a field we set differs, one merge patch
puts the builder's whole manifest back, which is also how manual edits (drift) get repaired.
"""

from collections.abc import Mapping
from typing import Any, Literal

import kopf

from livedub.operator.builders.quantity import quantity
from livedub.operator.client import Client, Kind
from livedub.operator.errors import KubernetesApiError

Outcome = Literal["created", "updated", "unchanged"]


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == []


def is_subset(desired: Any, actual: Any) -> bool:
    """True when every field in ``desired`` has the same value in ``actual``.

    Empty lists/maps equal absent ones because the API server drops them on write.
    """
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            return _empty(desired) and _empty(actual)
        return all(
            is_subset(value, actual.get(key)) if not _empty(value) else _empty(actual.get(key))
            for key, value in desired.items()
        )
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(desired) != len(actual):
            return _empty(desired) and _empty(actual)
        return all(is_subset(d, a) for d, a in zip(desired, actual, strict=True))
    if _empty(desired):
        return _empty(actual)
    if desired == actual or str(desired) == str(actual):
        return True
    # Quantities come back in canonical form; the same amount spelled differently is not drift.
    if isinstance(desired, str) and isinstance(actual, str):
        a, b = quantity(desired), quantity(actual)
        return a is not None and a == b
    return False


async def apply_child(
    client: Client, kind: Kind, manifest: dict[str, Any], owner: kopf.Body
) -> tuple[Outcome, dict[str, Any]]:
    # adopt() sets the controller owner reference (deleting the pool deletes this child) and
    # copies the pool's namespace; done here, where the child is written, as kopf recommends.
    kopf.adopt(manifest, owner=owner, strict=True)
    meta = manifest["metadata"]
    actual = await client.get(kind, meta["namespace"], meta["name"])
    if actual is None:
        try:
            return "created", await client.create(kind, meta["namespace"], manifest)
        except KubernetesApiError as exc:
            if exc.status != 409:
                raise
            # Created concurrently (the periodic tick and a handler raced): treat as existing.
            actual = await client.get(kind, meta["namespace"], meta["name"])
            if actual is None:
                raise

    if is_subset(manifest, actual):
        return "unchanged", actual
    return "updated", await client.patch(kind, meta["namespace"], meta["name"], manifest)
