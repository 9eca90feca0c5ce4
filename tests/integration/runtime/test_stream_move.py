"""A pod leaving the pool moves its live stream to another pod at a fragment boundary, losing and
reordering nothing: real servers on loopback, real engines, real speech, both transports.

The worker here does what the README asks of one ("Connecting the media worker"): it keeps every
fragment refused ``STREAM_MOVE``, and on the ``STREAM_MOVE`` notice it connects again (the Service
would route it to a Ready pod; here: the second server), re-inits the same stream and sends them
again. It does not close the old connection itself: the leaving pod must drop it, and the worker's
Socket.IO client (reconnection on) must really reconnect after that (a worker that only logs errors).
"""

from __future__ import annotations

from typing import Any

import pytest

from livedub.contract.env import DRAINING_ANNOTATION
from livedub.runtime.protocol import events as ev
from livedub.runtime.protocol.dialects.guide import GuideDialect
from livedub.runtime.protocol.dialects.worker import WorkerDialect
from livedub.runtime.server.keys import SERVICE_KEY
from livedub.runtime.server.move import CLOSE_AFTER_S, RETRY_AFTER_MS, move_error
from support.moves import UNMARKED, annotations_file
from support.moves import get as _get
from support.moves import metric as _metric
from support.moves import move_notice as _notice
from support.moves import moved as _moved
from support.moves import speech_pieces as _pieces


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_leaving_pod_moves_its_stream_without_losing_or_reordering_a_fragment(make_server, tmp_path, transport):
    annotations = annotations_file(tmp_path)
    leaving = await make_server(pod_annotations_file=annotations)
    other = await make_server()
    pieces, rate = _pieces()
    assert len(pieces) >= 6

    old = await leaving.connect(stream_id="s", worker_id="w1", transports=(transport,), reconnecting=True)
    assert (await old.init())[0] == "stream:ready"
    sent = 0
    window = 2

    def answered(recorder: Any) -> int:
        return len(recorder.of("fragment:processed"))

    # Steady traffic: at most `window` fragments in flight; the mark arrives after the first result.
    while not _notice(old) and sent < len(pieces):
        if sent - answered(old) < window:
            await old.send(f"f{sent}", sent, pieces[sent], rate=rate, stream_id="s")
            sent += 1
            if sent == 2:
                await old.processed(1)
                annotations.write_text(f'{UNMARKED}{DRAINING_ANNOTATION}="2026-12-01T13:00:00Z"\n')
            continue
        seen = answered(old)
        await old.wait_for(lambda r, n=seen: answered(r) > n or bool(_notice(r)), 120)
    await old.wait_for(lambda r: bool(_notice(r)), 120)
    notice = _notice(old)[0]
    assert notice["retryable"] is True and notice["retry_after_ms"] == RETRY_AFTER_MS
    assert notice["stream_id"] == "s" and notice["stage"] == "session"
    # The notice comes only once everything accepted was answered (the boundary): whatever the old
    # pod answers after it is a refusal to resend, never a dub.
    notice_at = next(i for i, (_, data) in enumerate(old.events) if data is notice)
    after = [d for n, d in old.events[notice_at + 1 :] if n == "fragment:processed"]
    assert all(_moved(r) for r in after), after
    # The worker's rule: every fragment the old pod did not dub goes again to the new one.
    dubbed = {r["sequence_number"] for r in old.of("fragment:processed") if not _moved(r)}
    moved = [seq for seq in range(sent) if seq not in dubbed]
    refused = {r["sequence_number"] for r in old.of("fragment:processed") if _moved(r)}
    for ack in old.of("fragment:ack"):
        if ack["sequence_number"] in refused:
            assert ack["status"] == "rejected" and ack["error"]["retryable"] is True

    new = await other.connect(stream_id="s", worker_id="w1", transports=(transport,))
    assert (await new.init())[0] == "stream:ready"
    again = [*moved, *range(sent, len(pieces))]
    for i, seq in enumerate(again):
        await new.send(f"f{seq}", seq, pieces[seq], rate=rate, stream_id="s")
        if i - answered(new) >= window - 1:
            await new.wait_for(lambda r, n=i: answered(r) >= n, 120)
    results = await new.processed(len(again))

    await old.wait_for(lambda r: answered(r) == sent, 30)  # the late ones are refused, not dropped
    assert {r["sequence_number"] for r in old.of("fragment:processed") if _moved(r)} == set(moved)
    kept = [r for r in old.of("fragment:processed") if not _moved(r)]
    on_old, on_new = [r["sequence_number"] for r in kept], [r["sequence_number"] for r in results]
    assert on_old and on_new, (on_old, on_new)  # the stream really was on both pods
    assert on_old == sorted(on_old) and on_new == sorted(on_new)
    assert max(on_old) < min(on_new)  # nothing the new pod answers comes before what the old one did
    assert sorted(on_old + on_new) == list(range(len(pieces)))  # none lost, none twice
    # The move costs no dub: nothing on the new pod is a move refusal, and a failure anywhere is the
    # pipeline's own (e.g. TIMEOUT on a machine shared with other jobs), answered in its place.
    assert not any(_moved(r) for r in results)
    assert sum(r["status"] in ("success", "partial") for r in kept + results) >= len(pieces) - 2, [
        (r["status"], (r.get("error") or {}).get("code")) for r in kept + results
    ]

    # The leaving pod drops the told connection itself, as a lost transport: the worker's own client
    # reconnects (here to the same URL: in a cluster the Service routes it to a Ready pod).
    await old.wait_for(lambda r: len(r.of("connect")) >= 2, CLOSE_AFTER_S + 10)
    assert leaving.app[SERVICE_KEY].stream_count() == 0
    _, metrics = await _get(leaving.url + "/metrics")
    assert _metric(metrics, 'sts_streams_moved_total{reason="drain"}') == 1
    assert _metric(metrics, 'sts_streams_moved_total{reason="rebalance"}') == 0


def test_the_move_notice_is_the_same_typed_error_in_both_dialects():
    event = ev.ErrorEvent.from_error(move_error("s", told=True), stream_id="s")
    for dialect in (GuideDialect(), WorkerDialect()):
        name, payload = dialect.encode(event)
        assert name == "error"
        assert payload["code"] == "STREAM_MOVE" and payload["retryable"] is True
        assert payload["retry_after_ms"] == RETRY_AFTER_MS and payload["stream_id"] == "s"
