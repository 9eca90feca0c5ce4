"""Order and retries over the wire: rejections keep their place, a retryable rejection can be retried,
a fragment never lands in a stream it did not name (issue 11 items 3, 4 and 8), a resend never gets a
second result, and a client gone before its fragment started leaves no accounting behind."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from livedub.runtime.protocol import events as ev
from livedub.runtime.server.keys import SERVICE_KEY
from support.data import fleurs

pytestmark = pytest.mark.slow


@pytest.fixture
def speech(shared_data) -> np.ndarray:
    audio, rate = fleurs("fleurs-en-004")
    return audio[: 2 * rate]


async def test_a_retried_backpressure_rejection_is_admitted_and_dubbed(make_server, speech):
    # Two in flight is the critical threshold: the third fragment sent at once is rejected.
    server = await make_server(
        backpressure_threshold_low=1,
        backpressure_threshold_medium=1,
        backpressure_threshold_high=2,
        backpressure_threshold_critical=2,
        pipeline_concurrency=1,
    )
    client = await server.connect()
    await client.init()
    for sequence in range(3):
        await client.send(f"f{sequence}", sequence, speech)
    await client.wait_for(lambda r: any(a["status"] == "rejected" for a in r.of("fragment:ack")), 30)
    rejected = next(a for a in client.of("fragment:ack") if a["status"] == "rejected")
    assert rejected["fragment_id"] == "f2" and rejected["error"]["code"] == "BACKPRESSURE_EXCEEDED"
    assert rejected["error"]["retryable"] is True

    await client.processed(1)  # room again: retry the same id and number, as a worker would
    await client.send("f2", 2, speech)
    results = await client.processed(4)
    assert [(r["fragment_id"], r["sequence_number"], r["status"]) for r in results[:3]] == [
        ("f0", 0, results[0]["status"]),
        ("f1", 1, results[1]["status"]),
        ("f2", 2, "failed"),  # the rejection, in its place
    ]
    retry = results[3]
    assert (retry["fragment_id"], retry["sequence_number"]) == ("f2", 2)
    assert retry["status"] in ("success", "partial"), retry.get("error")
    acks = [a for a in client.of("fragment:ack") if a["fragment_id"] == "f2"]
    assert [a["status"] for a in acks] == ["rejected", "queued"]


async def test_a_rejection_never_overtakes_an_earlier_fragment(make_server, speech):
    server = await make_server()
    client = await server.connect()
    await client.init()
    await client.send("A", 1, speech)
    await client.send("B", 2, speech)
    await client.send("C", 2, speech)  # a number already in flight under another id: refused
    results = await client.processed(3)
    assert [r["fragment_id"] for r in results] == ["A", "B", "C"]
    assert results[2]["status"] == "failed" and results[2]["error"]["code"] == "INVALID_PAYLOAD"
    assert [r["sequence_number"] for r in results] == [1, 2, 2]


async def test_a_fragment_naming_another_stream_is_not_dubbed_into_this_one(make_server, speech):
    server = await make_server()
    client = await server.connect(stream_id=None)  # no X-Stream-ID: the stream has no id of its own
    kind, ready = await client.init()
    assert kind == "stream:ready"
    await client.send("misrouted", 0, speech, stream_id="someone-else")
    (result,) = await client.processed(1)
    assert result["status"] == "failed" and result["error"]["code"] == "STREAM_NOT_INITIALIZED"
    assert "someone-else" in result["error"]["message"]
    # An id-less fragment still reaches the connection's only stream.
    await client.client.emit(
        "fragment:data",
        {
            "fragment_id": "plain",
            "sequence_number": 1,
            "audio": (np.clip(speech, -1, 1) * 32767).astype("<i2").tobytes(),
            "sample_rate": 16000,
        },
    )
    results = await client.processed(2)
    plain = results[1]
    assert plain["fragment_id"] == "plain" and plain["stream_id"] == ready["stream_id"]
    assert plain.get("transcript"), plain  # it was dubbed (2 s may still grade off-duration)


async def test_a_resend_of_an_answered_fragment_is_a_duplicate_even_while_paused(make_server):
    whole, _ = fleurs("fleurs-en-003")  # a whole sentence: dubbed, not failed (a failed one may be retried)
    server = await make_server()
    client = await server.connect()
    await client.init()
    await client.send("a", 0, whole)
    (first,) = await client.processed(1)
    assert first["status"] in ("success", "partial"), first.get("error")
    speech = whole
    await client.client.emit("stream:pause", {"stream_id": "stream-1"})
    await client.wait_for(lambda r: bool(r.of("stream:state")), 10)
    await client.send("a", 0, speech)
    await client.wait_for(lambda r: len(r.of("fragment:ack")) >= 2, 10)
    await asyncio.sleep(0.5)
    assert [a["status"] for a in client.of("fragment:ack")] == ["queued", "duplicate"]
    assert len(client.of("fragment:processed")) == 1  # never a second, contradictory result


async def test_a_disconnect_before_a_fragment_starts_releases_its_accounting(make_server, speech):
    server = await make_server()
    service = server.app[SERVICE_KEY]

    async def nowhere(*_: object) -> None:
        return None

    service.send = nowhere  # the client is gone: what matters is the bookkeeping
    service.connect("gone", None, "s")
    service.stream_init("gone", ev.StreamInit(source_language="en", target_language="es", glossary_id=None))
    pcm = (np.clip(speech, -1, 1) * 32767).astype("<i2").tobytes()
    fragment = ev.FragmentData(fragment_id="f", stream_id="s", sequence_number=0, audio=pcm)
    await service.fragment("gone", fragment)
    session = service.find_stream("gone", "s")
    await service.disconnect("gone")  # before the fragment's task ever ran
    await asyncio.sleep(0.2)
    assert service.inflight_total == 0 and await service.drain(1.0)
    assert session.idle.is_set()  # a stream:end waiting on the flush would return
