"""Whether this pod takes new streams: where the pool's load spreads from.

A pod takes a new stream while its models are loaded, it is not draining, it serves fewer than
``MAX_POD_STREAMS`` streams and the operator has not marked it for removal (``dubbing.livedub.io/draining``
in the pod's annotations, read from a downward-API file). Otherwise ``stream:init`` is refused
``POD_FULL`` (retryable, with ``retry_after_ms``), ``/ready/streams`` answers 503 — the pod's readiness
probe, so the Service stops sending it new connections while its live streams go on — and
``sts_accepting_streams`` is 0. The same file carries the operator's request to shed streams
(``dubbing.livedub.io/shed-streams``, ``server/shedding.py``): while that request stands the pod is
``shedding`` and refuses new streams the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from livedub.contract.env import DRAINING_ANNOTATION
from livedub.runtime.config import Settings
from livedub.runtime.errors import DubbingError, ErrorCode, Stage
from livedub.runtime.metrics import Metrics
from livedub.runtime.server.shedding import annotation_value

log = logging.getLogger(__name__)

#: The kubelet refreshes downward-API files within about a minute; reading every 2 s costs nothing.
ANNOTATIONS_POLL_S = 2.0


#: Why a pod refuses a new stream, by state (the refusals counter's ``reason``).
REFUSALS = {
    "full": "this pod serves its {limit} streams (MAX_POD_STREAMS)",
    "leaving": "this pod is leaving the pool",
    "shedding": "this pod is moving streams to pods with room",
}


def marked_for_removal(annotations: str) -> bool:
    """Whether a downward-API annotations file (``key="value"`` lines) carries the draining mark."""
    return annotation_value(annotations, DRAINING_ANNOTATION) is not None


class Placement:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        streams: Callable[[], int],
        loaded: Callable[[], bool],
        draining: Callable[[], bool],
        shedding: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._streams, self._loaded, self._draining, self._shedding = streams, loaded, draining, shedding
        #: Set by the app: whether the warm-up dub has run (until then /ready is 503 too).
        self.warmed: Callable[[], bool] = lambda: True
        self.leaving = False  # marked for removal by the operator
        #: Set by the service: asks the live streams to move when the mark appears (server/move.py).
        self.on_leaving: Callable[[], Awaitable[None]] | None = None
        #: Set by the service: the operator took the mark back (a cancelled drain): stop the move.
        self.on_staying: Callable[[], None] | None = None
        #: The shed mark's value (None: no mark), as last read.
        self.shed_value: str | None = None
        #: Set by the service: the shed mark appeared, changed (value) or went (None).
        self.on_shed: Callable[[str | None], Awaitable[None]] | None = None
        metrics.accepting_streams.set_function(lambda: 1.0 if self.state() == "accepting" else 0.0)

    def state(self) -> str:
        """accepting, loading, warming up, draining, leaving or full."""
        if self._draining():
            return "draining"
        if not self._loaded():
            return "loading"
        if not self.warmed():
            return "warming up"
        if self.leaving:
            return "leaving"
        if self._shedding():
            return "shedding"
        limit = self.settings.max_pod_streams
        if limit is not None and self._streams() >= limit:
            return "full"
        return "accepting"

    def admit_new_stream(self) -> None:
        """Raise ``POD_FULL`` unless this pod takes another stream (the caller checked readiness)."""
        state = self.state()
        if state not in REFUSALS:
            return
        self.metrics.streams_refused.labels(reason=state).inc()
        why = REFUSALS[state].format(limit=self.settings.max_pod_streams)
        raise DubbingError(
            ErrorCode.POD_FULL,
            f"{why}; reconnect in about {self.settings.stream_retry_after_s:.0f} s to reach a pod with room",
            stage=Stage.SESSION,
            retryable=True,
            retry_after_ms=int(self.settings.stream_retry_after_s * 1000),
        )

    def read_annotations(self, path: Path) -> None:
        try:
            text = path.read_text()
        except OSError:
            return  # not mounted yet, or being swapped by the kubelet: keep the last answer
        leaving = marked_for_removal(text)
        if leaving != self.leaving:
            log.info("pod marked for removal" if leaving else "pod no longer marked for removal")
            self.leaving = leaving
        self.shed_value = annotation_value(text)

    async def watch(self) -> None:
        """Follow the pod's annotations file until cancelled (only when POD_ANNOTATIONS_FILE is set)."""
        path = self.settings.pod_annotations_file
        if path is None:
            return
        while True:
            was, shed_was = self.leaving, self.shed_value
            await asyncio.to_thread(self.read_annotations, path)
            if self.leaving and not was and self.on_leaving is not None:
                await self.on_leaving()
            elif was and not self.leaving and self.on_staying is not None:
                self.on_staying()
            if self.shed_value != shed_was and self.on_shed is not None:
                await self.on_shed(self.shed_value)
            await asyncio.sleep(ANNOTATIONS_POLL_S)
