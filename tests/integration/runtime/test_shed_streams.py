"""An overloaded pod asked to shed streams moves exactly that many, at a fragment boundary, losing and
reordering nothing, while its other streams stay: real servers on loopback, real engines, real
speech, reconnecting python-socketio clients on both transports.

The operator's request arrives as ``dubbing.livedub.io/shed-streams`` in the downward-API annotations
file. The workers do what the README asks on ``STREAM_MOVE``: connect again (the Service would route
them to a Ready pod; here: the second server), re-init the same stream and go on.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from livedub.contract.env import SHED_STREAMS_ANNOTATION
from livedub.runtime.server.keys import SERVICE_KEY
from livedub.runtime.server.move import CLOSE_AFTER_S
from support.moves import UNMARKED, annotations_file
from support.moves import get as _get
from support.moves import metric as _metric
from support.moves import move_notice as _notice
from support.moves import moved as _moved
from support.moves import speech_pieces as _pieces

STREAMS = ("s0", "s1", "s2")  # connected in this order
SHED = 2


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_shedding_pod_moves_n_of_its_m_streams_and_keeps_the_others(make_server, tmp_path, transport):
    annotations = annotations_file(tmp_path)
    busy = await make_server(pod_annotations_file=annotations)
    other = await make_server()
    pieces, rate = _pieces()
    pieces = pieces[:3]
    old: dict[str, Any] = {}
    for i, stream in enumerate(STREAMS):
        old[stream] = await busy.connect(
            stream_id=stream, worker_id=f"w{i}", transports=(transport,), reconnecting=True
        )
        assert (await old[stream].init())[0] == "stream:ready"
    for stream in STREAMS:  # every stream has history on this pod before the request
        await old[stream].send(f"{stream}-f0", 0, pieces[0], rate=rate, stream_id=stream)
    for stream in STREAMS:
        await old[stream].processed(1)

    annotations.write_text(f'{UNMARKED}{SHED_STREAMS_ANNOTATION}="{SHED};from=3;at=1796234400"\n')
    # Nothing in flight anywhere: the most recently connected go, told at once (the boundary is now).
    moved = set(STREAMS[-SHED:])
    await asyncio.gather(*(old[s].wait_for(lambda r: bool(_notice(r)), 30) for s in moved))
    status, body = await _get(busy.url + "/ready/streams")
    assert status == 503 and '"shedding"' in body  # the Service sends the moved streams elsewhere
    newcomer = await busy.connect(stream_id="new", worker_id="w9")
    kind, refusal = await newcomer.init()
    assert kind == "error" and refusal["code"] == "POD_FULL" and refusal["retryable"] is True
    for stream in moved:
        notice = _notice(old[stream])[0]
        assert notice["stream_id"] == stream and notice["retryable"] is True

    # The moved streams go on on the other pod; the one that stays goes on here, never told.
    new = {}
    for stream in moved:
        new[stream] = await other.connect(stream_id=stream, worker_id=f"n{stream}", transports=(transport,))
        assert (await new[stream].init())[0] == "stream:ready"
    stays = STREAMS[0]
    for seq in (1, 2):
        for stream in STREAMS:
            target = old[stream] if stream == stays else new[stream]
            await target.send(f"{stream}-f{seq}", seq, pieces[seq], rate=rate, stream_id=stream)
    await old[stays].processed(3)
    for stream in moved:
        await new[stream].processed(2)

    assert not _notice(old[stays]) and not any(_moved(r) for r in old[stays].of("fragment:processed"))
    assert [r["sequence_number"] for r in old[stays].of("fragment:processed")] == [0, 1, 2]
    for stream in moved:
        on_old = [r["sequence_number"] for r in old[stream].of("fragment:processed")]
        on_new = [r["sequence_number"] for r in new[stream].of("fragment:processed")]
        assert on_old == [0] and on_new == [1, 2], (stream, on_old, on_new)  # none lost, none twice, in order
        assert not any(_moved(r) for r in new[stream].of("fragment:processed"))

    # The told connections are dropped as a lost transport: each worker's own client reconnects.
    await asyncio.gather(*(old[s].wait_for(lambda r: len(r.of("connect")) >= 2, CLOSE_AFTER_S + 10) for s in moved))
    assert len(old[stays].of("connect")) == 1 and old[stays].client.connected
    service = busy.app[SERVICE_KEY]
    assert service.stream_count() == 1
    # Shed done: it takes new streams again, and the moves are counted as a rebalance.
    assert (await _get(busy.url + "/ready/streams"))[0] == 200
    _, metrics = await _get(busy.url + "/metrics")
    assert _metric(metrics, 'sts_streams_moved_total{reason="rebalance"}') == SHED
    assert _metric(metrics, 'sts_streams_moved_total{reason="drain"}') == 0
    assert _metric(metrics, 'sts_streams_refused_total{reason="shedding"}') == 1
    # The same value, still in the file (the kubelet lags the operator), is not a second request.
    await asyncio.sleep(3)
    assert service.placement.state() == "accepting" and service.stream_count() == 1
