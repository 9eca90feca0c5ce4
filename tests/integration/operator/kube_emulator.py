"""kmock's in-memory Kubernetes API, completed where the operator tests need a real server's rules.

kmock (pinned in pyproject's dev extra) stores objects and streams watch events, but leaves what a
real API server adds to us (see ../shared/NOTES.md, "Kubernetes without a cluster"):

- ``uid``, ``resourceVersion``, ``creationTimestamp``, ``generation`` (bumped on spec changes only),
  ``generateName``; 201 on create; 409 on a duplicate; 422 when a JSON-patch ``test`` fails;
- the status subresource: ``PATCH .../status`` changes only ``status``, a main-resource patch
  never does;
- lists with ``kind``, a real ``resourceVersion`` and equality label selectors; watches that
  resume from a ``resourceVersion`` instead of replaying everything as ADDED;
- finalizers, and the garbage collector: deleting an owner deletes the objects whose
  ``ownerReferences`` name it (what cascades a DubbingPool to its Deployment and friends).

Everything else is kmock's. Writes are serialised by kmock's own lock, so resourceVersions are
strictly increasing in the order events are streamed.
"""

import copy
import datetime
import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jsonpatch
import kmock
from kmock._internal import aiobus, dicts, enums, rendering  # no public equivalents


class _LoggedBus(aiobus.Bus[Any]):
    """A bus that also remembers every event, so a watch can resume from a resourceVersion."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[dict[str, Any]] = []

    async def put(self, item: Any) -> None:
        self.log.append(item)
        await super().put(item)


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int(obj.get("metadata", {}).get("resourceVersion", 0))
    except ValueError:
        return 0


def _selector_matches(selector: str | None, obj: dict[str, Any]) -> bool:
    if not selector:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in selector.split(","):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term.strip() not in labels:
            return False
    return True


class KubeEmulator(kmock.KubernetesEmulator):
    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._counter = itertools.count(1000)
        self._buses.default_factory = _LoggedBus  # type: ignore[attr-defined]
        #: Every LIST request as (resource, User-Agent): tests tell the operator's own client from kopf's.
        self.lists: list[tuple[str, str]] = []

    # -- writes ---------------------------------------------------------------------------------

    def _has_status_subresource(self, resource: Any) -> bool:
        try:
            return "status" in self._resources[resource].subresources
        except KeyError:
            return False

    @staticmethod
    def _key(request: rendering.Request) -> tuple[Any, str | None, str]:
        assert request.resource is not None and request.name is not None
        return (request.resource, request.namespace, request.name)

    def _stamp(self, obj: dict[str, Any]) -> None:
        obj.setdefault("metadata", {})["resourceVersion"] = str(next(self._counter))

    async def _emit(self, resource: Any, kind: str, obj: dict[str, Any]) -> None:
        await self._buses[resource].put({"type": kind, "object": copy.deepcopy(obj)})

    async def _create(self, request: rendering.Request) -> None:
        obj = copy.deepcopy(request.data)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if request.namespace:
            meta["namespace"] = request.namespace
        key: tuple[Any, str | None, str] = (request.resource, meta.get("namespace"), meta["name"])
        if key in self._objects and not self._objects[key].deleted:
            raise kmock.KubernetesError(409, "AlreadyExists", f"{meta['name']} already exists")
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now, generation=1)
        if self._has_status_subresource(request.resource):
            obj.pop("status", None)
        self._stamp(obj)
        request.data.clear()
        request.data.update(obj)  # kmock's create reply reads the name from the request
        if key in self._objects:
            self._objects[key].create(obj)
        else:
            self._objects[key] = obj
        await self._emit(request.resource, "ADDED", obj)

    async def _update(self, request: rendering.Request) -> None:
        key = self._key(request)
        if key not in self._objects or self._objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        old = copy.deepcopy(self._objects[key].raw)
        try:
            new = copy.deepcopy(dict(dicts.patch_dict(old, request.data or {})))
        except (jsonpatch.JsonPatchTestFailed, jsonpatch.JsonPatchConflict) as exc:
            raise kmock.KubernetesError(422, "Invalid", str(exc)) from exc
        if request.subresource == "status":
            new = {**old, "status": new.get("status")}
        elif self._has_status_subresource(request.resource):
            new["status"] = old.get("status")
        if new.get("status") is None:
            new.pop("status", None)
        for field in ("uid", "creationTimestamp", "generation"):
            if field in old.get("metadata", {}):
                new["metadata"][field] = old["metadata"][field]
        if new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        self._stamp(new)
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._objects[key].history.append(new)
            self._objects[key].delete()
            await self._emit(request.resource, "DELETED", new)
            await self._collect_garbage()
        else:
            self._objects[key].history.append(new)
            await self._emit(request.resource, "MODIFIED", new)

    async def _delete(self, request: rendering.Request) -> None:
        key = self._key(request)
        if key not in self._objects or self._objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        obj = copy.deepcopy(self._objects[key].raw)
        if obj["metadata"].get("finalizers"):
            if not obj["metadata"].get("deletionTimestamp"):
                now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
                obj["metadata"]["deletionTimestamp"] = now
                self._stamp(obj)
                self._objects[key].history.append(obj)
                await self._emit(request.resource, "MODIFIED", obj)
            return
        self._stamp(obj)
        self._objects[key].history.append(obj)
        self._objects[key].delete()
        await self._emit(request.resource, "DELETED", obj)
        await self._collect_garbage()

    async def _collect_garbage(self) -> None:
        """Delete every object whose owners are all gone, repeatedly (owners of owners)."""
        while True:
            live = {o.raw["metadata"].get("uid") for o in self._objects.values() if not o.deleted}
            orphans = [
                (key, obj)
                for key, obj in self._objects.items()
                if not obj.deleted
                and (refs := obj.raw["metadata"].get("ownerReferences"))
                and all(ref.get("uid") not in live for ref in refs)
            ]
            if not orphans:
                return
            for (resource, _, _), obj in orphans:
                raw = copy.deepcopy(obj.raw)
                self._stamp(raw)
                obj.history.append(raw)
                obj.delete()
                await self._emit(resource, "DELETED", raw)

    async def _handle(self, request: rendering.Request) -> Any:
        status = None
        if request.resource is not None and request.action in (
            enums.action.CREATE,
            enums.action.UPDATE,
            enums.action.DELETE,
        ):
            async with self._lock:
                if request.action == enums.action.CREATE:
                    await self._create(request)
                    status = 201
                elif request.action == enums.action.UPDATE and request.name is not None:
                    await self._update(request)
                elif request.action == enums.action.DELETE and request.name is not None:
                    await self._delete(request)
        # Skip KubernetesEmulator's own storage logic (done above); keep its routing and replies.
        response = await kmock.KubernetesScaffold._handle(self, request)
        if status is not None and not response.prepared:
            response.set_status(status)
        return response

    # -- reads (kmock's fallbacks call these by name) ----------------------------------------

    def _matching(self, request: rendering.Request) -> list[dict[str, Any]]:
        selector = request.params.get("labelSelector")
        return [
            copy.deepcopy(obj.raw)
            for (resource, namespace, _), obj in self._objects.items()
            if resource == request.resource
            and not obj.deleted
            and (request.namespace is None or namespace == request.namespace)
            and _selector_matches(selector, obj.raw)
        ]

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        assert request.resource is not None
        self.lists.append((str(request.resource), str(request.headers.get("User-Agent", ""))))
        async with self._lock:
            items = self._matching(request)
            current = str(next(self._counter))
        try:
            kind = f"{self._resources[request.resource].kind}List"
        except KeyError:
            kind = "List"
        return {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": current}, "items": items}

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        yield b""  # send the headers now: a watch may stay quiet for a long time
        assert request.resource is not None
        since = request.params.get("resourceVersion")
        selector = request.params.get("labelSelector")
        bus = self._buses[request.resource]
        async with self._lock:
            mark = await bus.mark()  # taken under the write lock: no event falls between
            if since and since != "0":
                backlog = [e for e in getattr(bus, "log", []) if _rv(e["object"]) > int(since)]
            else:
                backlog = [{"type": "ADDED", "object": obj} for obj in self._matching(request)]
        last = 0
        for event in backlog:
            if self._wanted(request, selector, event):
                last = max(last, _rv(event["object"]))
                yield event
        async for event in mark:
            if _rv(event["object"]) > last and self._wanted(request, selector, event):
                yield event

    @staticmethod
    def _wanted(request: rendering.Request, selector: str | None, event: dict[str, Any]) -> bool:
        meta = event["object"].get("metadata", {})
        if request.namespace is not None and meta.get("namespace") != request.namespace:
            return False
        return _selector_matches(selector, event["object"])
