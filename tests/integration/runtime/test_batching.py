"""ASR batching across streams: concurrent fragments share model calls (metric-visible)."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest

from livedub.runtime.engines.base import ASR_SAMPLE_RATE
from livedub.runtime.server.keys import SERVICE_KEY
from support.data import fleurs
from support.wrapped import WrappedASR

pytestmark = pytest.mark.slow


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, name
    return float(match.group(1))


async def test_four_streams_at_once_use_fewer_asr_calls_than_fragments(make_server, shared_data):
    server = await make_server(asr_batch_window_ms=300, asr_max_batch=8, pipeline_concurrency=8)
    clips = [fleurs(f"fleurs-en-00{i}")[0][: 3 * ASR_SAMPLE_RATE] for i in range(4)]
    clients = [await server.connect(stream_id=f"s{i}", worker_id=f"w{i}") for i in range(4)]
    for client in clients:
        await client.init()
    for round_ in range(2):
        await asyncio.gather(
            *(c.send(f"r{round_}", round_, clips[i], stream_id=f"s{i}") for i, c in enumerate(clients))
        )
        await asyncio.gather(*(c.processed(round_ + 1, timeout=180) for c in clients))
    results = [r for c in clients for r in c.of("fragment:processed")]
    assert len(results) == 8 and all(r["status"] in ("success", "partial") for r in results)
    assert all(r["transcript"] for r in results)
    metrics = server.app[SERVICE_KEY].metrics.render().decode()
    calls = _metric(metrics, "sts_asr_model_calls_total")
    assert calls < len(results), f"{calls} ASR calls for {len(results)} fragments"
    assert _metric(metrics, "sts_asr_batch_size_sum") == len(results)
    assert _metric(metrics, "sts_asr_waiting") == 0, "nothing left waiting once every fragment is dubbed"


class _ReportsCuda(WrappedASR):
    """The real Whisper, reporting the device a GPU pod would (no GPU is reachable from these tests)."""

    device = "cuda"


async def test_a_gpu_asr_sizes_the_server_for_batches(make_server, engines, shared_data):
    server = await make_server(engines_override=dataclasses.replace(engines, asr=_ReportsCuda(engines.asr)))
    service = server.app[SERVICE_KEY]
    assert service.sizing.pipeline_concurrency >= service.sizing.asr_max_batch == 64
    assert service.executor._max_workers == service.sizing.worker_threads == 32
    assert service.pipeline.asr._window_s == 0.02
    client = await server.connect()
    await client.init()
    await client.send("f0", 0, fleurs("fleurs-en-000")[0][: 3 * ASR_SAMPLE_RATE])
    (result,) = await client.processed(1, timeout=120)
    assert result["status"] in ("success", "partial") and result["transcript"]
