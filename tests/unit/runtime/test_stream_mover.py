"""The stream mover's bookkeeping (server/move.py): a cancelled drain stops the move, and a told
connection is always closed, whatever order idle closes, notices and stream ends come in.

The mover talks to the service only through its three callables (notify, close, streams_of): here
they record what the mover asks for, over a connection table the test changes as the service would.
The wire side (real servers, both transports) is in tests/integration/runtime/test_stream_move.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from livedub.contract.env import DRAINING_ANNOTATION
from livedub.runtime.config import Settings
from livedub.runtime.errors import DubbingError
from livedub.runtime.metrics import Metrics
from livedub.runtime.server import move, placement
from livedub.runtime.server.move import StreamMover

SHORT_S = 0.05


class Pod:
    def __init__(self) -> None:
        self.streams: dict[str, list[str]] = {}
        self.notified: list[tuple[str, str]] = []
        self.closed: list[str] = []
        self.mover = StreamMover(notify=self.notify, close=self.close, streams_of=lambda sid: self.streams.get(sid, []))

    async def notify(self, sid: str, stream_id: str, error: DubbingError) -> None:
        self.notified.append((sid, stream_id))

    async def close(self, sid: str) -> None:
        self.closed.append(sid)


@pytest.fixture(autouse=True)
def _short_close(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(move, "CLOSE_AFTER_S", SHORT_S)


async def test_a_cancelled_drain_lets_the_streams_not_yet_told_stay():
    pod = Pod()
    pod.streams["c"] = ["a", "b"]
    pod.mover.request([("c", "a"), ("c", "b")])
    await pod.mover.boundary("c", "a", 0)  # told
    await pod.mover.boundary("c", "b", 1)  # a fragment in flight: not yet
    pod.mover.cancel()
    assert not pod.mover.refuses("c", "b")  # b goes on dubbing here
    assert pod.mover.refuses("c", "a")  # a was asked to reconnect: it moves
    await pod.mover.boundary("c", "b", 0)
    assert pod.notified == [("c", "a")]
    await asyncio.sleep(SHORT_S * 4)
    assert pod.closed == []  # b still lives on the connection


async def test_an_idle_close_pending_when_a_stream_comes_and_is_told_still_closes_the_connection():
    pod = Pod()
    pod.mover.close_if_idle_later("c", SHORT_S)  # POD_FULL on a connection with no stream
    pod.streams["c"] = ["a"]  # then a stream is admitted on it
    pod.mover.request([("c", "a")])  # and the pod is marked
    await pod.mover.boundary("c", "a", 0)
    await asyncio.sleep(SHORT_S * 6)
    assert pod.notified == [("c", "a")] and pod.closed == ["c"]


async def test_a_told_connection_closes_when_its_last_untold_stream_ends():
    pod = Pod()
    pod.streams["c"] = ["a", "b"]
    pod.mover.request([("c", "a"), ("c", "b")])
    await pod.mover.boundary("c", "a", 0)
    await pod.mover.boundary("c", "b", 2)
    pod.streams["c"] = ["a"]  # b ends with stream:end before being told
    pod.mover.ended("c", "b")
    await asyncio.sleep(SHORT_S * 4)
    assert pod.closed == ["c"]


async def test_the_pod_follows_the_mark_both_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(placement, "ANNOTATIONS_POLL_S", 0.01)
    path = tmp_path / "annotations"
    path.write_text(f'{DRAINING_ANNOTATION}="2026-12-01T13:00:00Z"\n')
    place = placement.Placement(
        Settings(_env_file=None, pod_annotations_file=path),
        Metrics(),
        streams=lambda: 0,
        loaded=lambda: True,
        draining=lambda: False,
    )
    seen: list[str] = []

    async def leaving() -> None:
        seen.append("leaving")

    place.on_leaving = leaving
    place.on_staying = lambda: seen.append("staying")
    watch = asyncio.create_task(place.watch())
    try:
        for _ in range(200):
            if seen:
                break
            await asyncio.sleep(0.01)
        path.write_text('prometheus.io/scrape="true"\n')  # the operator cancelled the drain
        for _ in range(200):
            if len(seen) > 1:
                break
            await asyncio.sleep(0.01)
    finally:
        watch.cancel()
    assert seen == ["leaving", "staying"] and not place.leaving
