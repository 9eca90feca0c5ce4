"""A full pod stops taking new streams, says so where the Service and the operator look, and recovers.

Real server, real engines: ``MAX_POD_STREAMS`` caps live streams across connections; the next
``stream:init`` is refused ``POD_FULL`` (retryable, with ``retry_after_ms``), ``/ready/streams`` (the
pod's readiness probe) answers 503, ``sts_accepting_streams`` reads 0, and a refusal is counted in
``sts_streams_refused_total``. The operator's removal mark arrives as a downward-API annotations file.
"""

from __future__ import annotations

import asyncio

import pytest

from livedub.runtime.server.keys import SERVICE_KEY
from livedub.runtime.server.placement import ANNOTATIONS_POLL_S, DRAINING_ANNOTATION
from support.moves import get as _get
from support.moves import metric as _metric


async def test_a_full_pod_refuses_new_streams_until_one_ends(make_server):
    server = await make_server(max_pod_streams=2, stream_retry_after_s=7)
    first = await server.connect(stream_id="s1", worker_id="w1")
    second = await server.connect(stream_id="s2", worker_id="w2")
    assert (await first.init())[0] == "stream:ready"
    assert (await _get(server.url + "/ready/streams"))[0] == 200
    assert (await second.init())[0] == "stream:ready"
    # Re-initialising a stream it already has is not a new stream: still allowed when full.
    assert (await second.init())[0] == "stream:ready"

    third = await server.connect(stream_id="s3", worker_id="w3")
    kind, refusal = await third.init()
    assert kind == "error" and refusal["code"] == "POD_FULL"
    assert refusal["retryable"] is True and refusal["retry_after_ms"] == 7000
    status, body = await _get(server.url + "/ready/streams")
    assert status == 503 and '"full"' in body
    assert (await _get(server.url + "/ready"))[0] == 200  # models loaded, not draining: still alive
    _, metrics = await _get(server.url + "/metrics")
    assert _metric(metrics, "sts_accepting_streams") == 0
    assert _metric(metrics, 'sts_streams_refused_total{reason="full"}') == 1
    assert _metric(metrics, "sts_streams_active") == 2

    await first.client.emit("stream:end", {"stream_id": "s1"})
    await first.wait_for(lambda r: bool(r.of("stream:complete")), 30)
    assert (await _get(server.url + "/ready/streams"))[0] == 200
    assert (await third.init())[0] == "stream:ready"  # the retry after the refusal is admitted


async def test_a_pod_marked_for_removal_takes_no_new_streams_but_keeps_its_own(make_server, tmp_path):
    annotations = tmp_path / "annotations"
    annotations.write_text('prometheus.io/scrape="true"\n')
    server = await make_server(pod_annotations_file=annotations)
    live = await server.connect(stream_id="live", worker_id="w1")
    assert (await live.init())[0] == "stream:ready"

    annotations.write_text(f'prometheus.io/scrape="true"\n{DRAINING_ANNOTATION}="1764590000"\n')
    placement = server.app[SERVICE_KEY].placement
    for _ in range(int(4 * ANNOTATIONS_POLL_S / 0.1)):
        if placement.leaving:
            break
        await asyncio.sleep(0.1)
    assert placement.leaving
    status, body = await _get(server.url + "/ready/streams")
    assert status == 503 and '"leaving"' in body
    newcomer = await server.connect(stream_id="new", worker_id="w2")
    kind, refusal = await newcomer.init()
    assert kind == "error" and refusal["code"] == "POD_FULL" and refusal["retryable"] is True
    # Counted apart from "full": a leaving pod's refusals are not demand (the operator reads only "full").
    _, metrics = await _get(server.url + "/metrics")
    assert _metric(metrics, 'sts_streams_refused_total{reason="leaving"}') == 1
    assert _metric(metrics, 'sts_streams_refused_total{reason="full"}') == 0
    # The live stream's own control still works: it is not cut off.
    await live.client.emit("stream:pause", {"stream_id": "live"})
    await live.wait_for(lambda r: bool(r.of("stream:state")), 10)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_refused_connection_is_closed_at_retry_after_so_the_worker_reaches_another_pod(make_server, transport):
    # The refusal comes over a connection already bound to the full pod: retrying on it cannot reach
    # another pod. The pod drops it at retry_after as a lost transport, so a client with reconnection
    # on really opens a new connection (an Engine.IO CLOSE would be final: no second connect); the
    # stream it does serve keeps its own connection.
    server = await make_server(max_pod_streams=1, stream_retry_after_s=1)
    live = await server.connect(stream_id="s1", worker_id="w1", transports=("polling",))
    assert (await live.init())[0] == "stream:ready"
    refused = await server.connect(stream_id="s2", worker_id="w2", transports=(transport,), reconnecting=True)
    kind, refusal = await refused.init()
    assert kind == "error" and refusal["code"] == "POD_FULL" and refusal["retry_after_ms"] == 1000
    assert refused.client.connected and len(refused.of("connect")) == 1
    await refused.wait_for(lambda r: len(r.of("connect")) >= 2, 15)  # reconnected by its own client
    assert live.client.connected and server.app[SERVICE_KEY].stream_count() == 1
