"""Wire dialects: how one stream's typed messages look on the Socket.IO wire.

The service and the sessions speak only the typed messages of :mod:`livedub.runtime.protocol.events`;
a dialect owns event names, payload shapes and serialisation for its clients. Two ship:

* ``guide`` — the quick-start guide's section 10, field for field (plus optional extensions);
* ``worker`` — the nested JSON of the media-service worker the guide was written for
  (``config`` / ``audio`` objects, object-shaped ``dubbed_audio``, its backpressure vocabulary).

Each stream is answered in the dialect its ``stream:init`` was written in (or the one it names with
``dialect``). A third dialect is a new module here plus one line in :data:`DIALECTS`.
"""

from livedub.runtime.protocol.dialects.base import Dialect
from livedub.runtime.protocol.dialects.guide import GuideDialect
from livedub.runtime.protocol.dialects.worker import WorkerDialect

GUIDE = GuideDialect()
WORKER = WorkerDialect()
DIALECTS: dict[str, Dialect] = {d.name: d for d in (GUIDE, WORKER)}


def detect(payload: object) -> Dialect:
    """The dialect an inbound payload is written in: its explicit ``dialect``, else its shape."""
    if isinstance(payload, dict):
        named = payload.get("dialect")
        if isinstance(named, str) and named in DIALECTS:
            return DIALECTS[named]
        for dialect in DIALECTS.values():
            if dialect is not GUIDE and dialect.recognises(payload):
                return dialect
    return GUIDE


__all__ = ["DIALECTS", "GUIDE", "WORKER", "Dialect", "detect"]
