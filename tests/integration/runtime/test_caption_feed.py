"""``GET /captions/{stream_id}`` (Server-Sent Events) over the real server on loopback.

A worker dubs a captions stream of FLEURS speech with the python Socket.IO client while an SSE
client reads the feed over HTTP; authentication is on (``AUTH_MODE=required``) as in a pod.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np
import pytest

from livedub.runtime.protocol import events as ev
from livedub.runtime.server.keys import CAPTIONS_KEY
from support.speakers import RATE, alternating

pytestmark = pytest.mark.slow
TOKEN = "caption-feed-test-token"
AUTH = {"AUTH_MODE": "required", "AUTH_TOKENS": TOKEN}
BEARER = {"Authorization": f"Bearer {TOKEN}"}
#: Cue timing is what is checked here, not latency (see test_speakers.py).
ROOMY = {"asr_timeout_ms": 60_000, "translation_timeout_ms": 60_000, "tts_timeout_ms": 60_000}


async def read_events(response: aiohttp.ClientResponse, into: list[tuple[str, dict[str, Any]]]) -> None:
    """Parse an SSE body (``event:`` / ``data:`` / blank line) until the server ends it."""
    event, data = "message", []
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if not line:
            if data:
                into.append((event, json.loads("\n".join(data))))
            event, data = "message", []
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])


async def test_feed_carries_each_fragments_cues_in_order_on_the_streams_clock(make_server, shared_data):
    server = await make_server(**AUTH, **ROOMY)
    worker = await server.connect(auth={"token": TOKEN})
    kind, ready = await worker.init(captions=True, speakers="auto")
    assert kind == "stream:ready", ready
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/captions/stream-1") as refused:
            assert refused.status == 401 and (await refused.json())["code"] == "AUTH_FAILED"
        async with http.get(f"{server.url}/captions/stream-1", headers={"Authorization": "Bearer wrong"}) as refused:
            assert refused.status == 401
        async with http.get(f"{server.url}/captions/no-such-stream", headers=BEARER) as missing:
            assert missing.status == 404 and (await missing.json())["code"] == "STREAM_NOT_FOUND"

        # ?token= is what a browser's EventSource can send.
        feed = await http.get(f"{server.url}/captions/stream-1?token={TOKEN}")
        assert feed.status == 200 and feed.headers["Content-Type"].startswith("text/event-stream")
        events: list[tuple[str, dict[str, Any]]] = []
        reader = asyncio.create_task(read_events(feed, events))
        fragments = [audio for _, audio in alternating("AB")]
        fragments.insert(1, np.zeros(3 * RATE, dtype=np.float32))  # a pause: no cues, but it moves the clock
        for index, audio in enumerate(fragments):
            await worker.send(f"f{index}", index, audio)
        results = await worker.processed(len(fragments), timeout=300)
        await worker.client.emit("stream:end", {})
        await asyncio.wait_for(reader, 60)  # the server ends the body after the end event
        feed.release()

    assert events[-1] == ("end", {"stream_id": "stream-1", "reason": "complete"})
    cues = [data for name, data in events if name == "cues"]
    assert [c["sequence_number"] for c in cues] == list(range(len(fragments)))
    offsets = list(itertools.accumulate([0] + [r["metadata"]["original_duration_ms"] for r in results[:-1]]))
    for cue_event, result, offset in zip(cues, results, offsets, strict=True):
        assert cue_event["offset_ms"] == offset and cue_event["speaker"] == result.get("speaker")
        assert (cue_event["source_language"], cue_event["target_language"]) == ("en", "es")
        captions = result["captions"]
        for side in ("source", "target"):
            # The very cues the worker got, moved onto the stream's clock.
            assert [(c["start_ms"] - offset, c["end_ms"] - offset, c["text"]) for c in cue_event[side]] == [
                (c["start_ms"], c["end_ms"], c["text"]) for c in captions[side]
            ]
            end = offset + result["metadata"]["original_duration_ms"]
            assert all(offset <= c["start_ms"] <= c["end_ms"] <= end for c in cue_event[side])
    speech = [cues[0], cues[2]]
    assert all(c["source"] and c["target"] and c["source_timing"] == "words" for c in speech)
    assert cues[1]["source"] == [] and cues[1]["offset_ms"] == 6000
    assert speech[0]["speaker"] != speech[1]["speaker"]


def _processed(sequence: int, text: str) -> ev.FragmentProcessed:
    cue = ev.CaptionCue(start_ms=0, end_ms=5000, text=text)
    return ev.FragmentProcessed(
        fragment_id=f"x{sequence}",
        status="success",
        stream_id="stream-1",
        sequence_number=sequence,
        metadata=ev.DurationMetadata(
            original_duration_ms=6000, dubbed_duration_ms=6000, duration_variance_percent=0, speed_ratio=1
        ),
        captions=ev.Captions(source_language="en", target_language="es", source=[cue], target=[cue]),
    )


async def test_a_subscriber_that_never_reads_is_dropped_and_its_queue_stays_bounded(make_server, shared_data):
    queue = 32
    server = await make_server(**AUTH, captions_feed_queue=queue, captions_feed_write_timeout_s=1.0)
    worker = await server.connect(auth={"token": TOKEN})
    kind, _ = await worker.init(captions=True)
    assert kind == "stream:ready"
    feed = server.app[CAPTIONS_KEY]
    url = urlsplit(server.url)
    # The stalled consumer: a raw socket with a tiny receive window that never reads a byte.
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect((url.hostname, url.port))
    stalled.sendall(f"GET /captions/stream-1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
    async with aiohttp.ClientSession() as http:
        reading = await http.get(f"{server.url}/captions/stream-1", headers=BEARER)
        events: list[tuple[str, dict[str, Any]]] = []
        reader = asyncio.create_task(read_events(reading, events))
        for _ in range(100):
            if feed.subscribers("stream-1") == 2:
                break
            await asyncio.sleep(0.05)
        assert feed.subscribers("stream-1") == 2
        # What the sender would emit, as fast as the event loop lets it: ~8 KB of cue text a fragment.
        sid = "worker-sid"  # the feed keys streams by stream_id; the sid only names unnamed ones
        text = "palabra " * 1000
        sent, most = 0, 0
        while feed.dropped == 0 and sent < 5000:
            for _ in range(8):
                feed.observe(sid, _processed(sent, text), "guide")
                sent += 1
            most = max(most, feed.buffered())
            # The reading subscriber keeps up; only the stalled one falls behind.
            for _ in range(200):
                if len(events) >= sent:
                    break
                await asyncio.sleep(0.01)
        assert feed.dropped == 1, (sent, feed.buffered())
        assert feed.subscribers("stream-1") == 1  # the reader is still subscribed
        assert most <= 2 * queue  # never more than the bound per subscriber, whatever was sent
        print(
            f"stalled subscriber dropped after {sent} events (~{sent * 16 / 1024:.1f} MB of cues); peak queued {most}"
        )
        # The reader got every event, in order, and goes on getting them after the drop.
        feed.observe(sid, _processed(sent, "after"), "guide")
        for _ in range(200):
            if len(events) > sent:
                break
            await asyncio.sleep(0.01)
        assert [d["sequence_number"] for _, d in events] == list(range(sent + 1))
        # The stalled connection is closed by the server (its write timed out), not held open.
        await asyncio.sleep(2.5)
        stalled.settimeout(5)
        try:
            while stalled.recv(65536):  # what was in flight, then EOF
                pass
        except ConnectionResetError:
            pass  # aborted: equally closed
        except TimeoutError:
            pytest.fail("the server still holds the stalled subscriber's connection")
        finally:
            stalled.close()
        reader.cancel()
        reading.release()


async def test_a_fragment_that_fails_after_decoding_still_moves_the_feeds_clock(make_server, shared_data):
    """A refused fragment (LANGUAGE_MISMATCH, after decoding) is 6 s of the programme all the same: the
    worker plays the original there, so the cues after it must still land after it."""
    from support.data import fleurs

    server = await make_server(**AUTH, **ROOMY)
    worker = await server.connect(auth={"token": TOKEN})
    kind, ready = await worker.init(captions=True, language_check="refuse")
    assert kind == "stream:ready", ready
    clips = [fleurs(name)[0][: 6 * RATE] for name in ("fleurs-en-001", "fleurs-es-000", "fleurs-en-002")]
    async with aiohttp.ClientSession() as http:
        feed = await http.get(f"{server.url}/captions/stream-1", headers=BEARER)
        assert feed.status == 200
        events: list[tuple[str, dict[str, Any]]] = []
        reader = asyncio.create_task(read_events(feed, events))
        for index, audio in enumerate(clips):
            await worker.send(f"f{index}", index, audio)
        results = await worker.processed(len(clips), timeout=300)
        await worker.client.emit("stream:end", {})
        await asyncio.wait_for(reader, 60)
        feed.release()
    assert [r["status"] for r in results][1] == "failed" and results[1]["error"]["code"] == "LANGUAGE_MISMATCH"
    cues = {data["sequence_number"]: data for name, data in events if name == "cues"}
    assert sorted(cues) == [0, 2], events  # the refused fragment has no captions
    assert cues[0]["offset_ms"] == 0
    assert cues[2]["offset_ms"] == 12000, cues[2]["offset_ms"]  # 6 s + the refused 6 s
    assert all(12000 <= c["start_ms"] <= c["end_ms"] <= 18000 for c in cues[2]["source"] + cues[2]["target"])


async def test_a_subscriber_that_disconnects_mid_stream_is_let_go_and_the_stream_goes_on(make_server, shared_data):
    server = await make_server(**AUTH, **ROOMY)
    worker = await server.connect(auth={"token": TOKEN})
    kind, _ = await worker.init(captions=True)
    assert kind == "stream:ready"
    feed = server.app[CAPTIONS_KEY]
    pause = np.zeros(2 * RATE, dtype=np.float32)  # no speech: answered at once, with empty cue lists
    async with aiohttp.ClientSession() as http:
        leaving = await http.get(f"{server.url}/captions/stream-1", headers=BEARER)
        staying = await http.get(f"{server.url}/captions/stream-1", headers=BEARER)
        events: list[tuple[str, dict[str, Any]]] = []
        reader = asyncio.create_task(read_events(staying, events))
        await worker.send("p0", 0, pause)
        head = b""
        while b"event: cues" not in head:  # the retry line, then the first cues event
            head += await asyncio.wait_for(leaving.content.readuntil(b"\n\n"), 60)
        leaving.close()  # gone mid-stream, without a word
        for index in range(1, 4):
            await worker.send(f"p{index}", index, pause)
        results = await worker.processed(4, timeout=120)
        assert [r["sequence_number"] for r in results] == [0, 1, 2, 3]
        for _ in range(200):  # the next write to the closed socket fails; keepalives come every 15 s
            if feed.subscribers("stream-1") == 1:
                break
            await asyncio.sleep(0.1)
        assert feed.subscribers("stream-1") == 1
        await worker.client.emit("stream:end", {})
        await asyncio.wait_for(reader, 60)
        staying.release()
    assert [d["sequence_number"] for name, d in events if name == "cues"] == [0, 1, 2, 3]
    assert events[-1][0] == "end"
