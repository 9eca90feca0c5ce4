"""Whether this pod takes new streams: where the pool's load spreads from.

A pod takes a new stream while its models are loaded, it is not draining, it serves fewer than
``MAX_POD_STREAMS`` streams and the operator has not marked it for removal (``dubbing.livedub.io/draining``
in the pod's annotations, read from a downward-API file). Otherwise ``stream:init`` is refused
``POD_FULL`` (retryable, with ``retry_after_ms``), ``/ready/streams`` answers 503 — the pod's readiness
probe, so the Service stops sending it new connections while its live streams go on — and
``sts_accepting_streams`` is 0.
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

log = logging.getLogger(__name__)

#: The kubelet refreshes downward-API files within about a minute; reading every 2 s costs nothing.
ANNOTATIONS_POLL_S = 2.0


def marked_for_removal(annotations: str) -> bool:
    """Whether a downward-API annotations file (``key="value"`` lines) carries the draining mark."""
    return any(line.split("=", 1)[0].strip() == DRAINING_ANNOTATION for line in annotations.splitlines())


class Placement:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        streams: Callable[[], int],
        loaded: Callable[[], bool],
        draining: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._streams, self._loaded, self._draining = streams, loaded, draining
        #: Set by the app: whether the warm-up dub has run (until then /ready is 503 too).
        self.warmed: Callable[[], bool] = lambda: True
        self.leaving = False  # marked for removal by the operator
        #: Set by the service: asks the live streams to move when the mark appears (server/move.py).
        self.on_leaving: Callable[[], Awaitable[None]] | None = None
        #: Set by the service: the operator took the mark back (a cancelled drain): stop the move.
        self.on_staying: Callable[[], None] | None = None
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
        limit = self.settings.max_pod_streams
        if limit is not None and self._streams() >= limit:
            return "full"
        return "accepting"

    def admit_new_stream(self) -> None:
        """Raise ``POD_FULL`` unless this pod takes another stream (the caller checked readiness)."""
        state = self.state()
        if state not in ("full", "leaving"):
            return
        self.metrics.streams_refused.labels(reason=state).inc()
        why = (
            f"this pod serves its {self.settings.max_pod_streams} streams (MAX_POD_STREAMS)"
            if state == "full"
            else "this pod is leaving the pool"
        )
        raise DubbingError(
            ErrorCode.POD_FULL,
            f"{why}; reconnect in about {self.settings.stream_retry_after_s:.0f} s to reach a pod with room",
            stage=Stage.SESSION,
            retryable=True,
            retry_after_ms=int(self.settings.stream_retry_after_s * 1000),
        )

    def read_annotations(self, path: Path) -> None:
        try:
            leaving = marked_for_removal(path.read_text())
        except OSError:
            return  # not mounted yet, or being swapped by the kubelet: keep the last answer
        if leaving != self.leaving:
            log.info("pod marked for removal" if leaving else "pod no longer marked for removal")
            self.leaving = leaving

    async def watch(self) -> None:
        """Follow the pod's annotations file until cancelled (only when POD_ANNOTATIONS_FILE is set)."""
        path = self.settings.pod_annotations_file
        if path is None:
            return
        while True:
            was = self.leaving
            await asyncio.to_thread(self.read_annotations, path)
            if self.leaving and not was and self.on_leaving is not None:
                await self.on_leaving()
            elif was and not self.leaving and self.on_staying is not None:
                self.on_staying()
            await asyncio.sleep(ANNOTATIONS_POLL_S)
