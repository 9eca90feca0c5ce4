"""Load generation: N concurrent live streams through one runtime, measured from the client side.

Each stream is a ``dub_fragments`` worker (the same code users run), optionally paced in real
time. The report answers what an operator asks after a load test: did every fragment come back
(sent = acked = processed), in order, how late, and how often did the server push back.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from livedub.runtime.client.dub import DubOptions, dub_fragments


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass
class LoadReport:
    streams: int
    fragments_per_stream: int
    sent: int
    acked: int
    processed: int
    order_violations: int
    backpressure_events: int
    statuses: dict[str, int]
    ack_ms_p99: float
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_p99: float
    processing_ms_p50: float
    processing_ms_p95: float
    processing_ms_p99: float
    wall_s: float
    fragments: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("fragments")
        return data


async def run_load(
    url: str,
    clips: list[list[np.ndarray]],
    *,
    realtime: bool,
    fragment_s: float = 6.0,
    token: str | None = None,
    stagger_s: float = 0.0,
    keep_audio: bool = False,
) -> LoadReport:
    """``clips[i]`` is the list of 16 kHz fragments stream ``i`` sends."""
    started = time.perf_counter()

    async def one(index: int, fragments: list[np.ndarray]) -> dict[str, Any]:
        options = DubOptions(
            url=url,
            fragment_s=fragment_s,
            realtime=realtime,
            token=token,
            progress=False,
            worker_id=f"load-{index}",
            start_delay_s=index * stagger_s,
        )
        return await dub_fragments(fragments, options, stream_id=f"load-{index:03d}")

    results = await asyncio.gather(*(one(i, frags) for i, frags in enumerate(clips)))
    rows: list[dict[str, Any]] = []
    violations = 0
    backpressure = 0
    for index, result in enumerate(results):
        violations += 0 if result["summary"]["in_order"] else 1
        backpressure += sum(1 for e in result["events"] if e["event"] == "backpressure")
        for row in result["fragments"]:
            audio = row.pop("_audio", None)
            if keep_audio:
                row["_audio"] = audio
            rows.append({"stream": index, **row})
    processed = [r for r in rows if r.get("status") in ("success", "partial", "failed") and "latency_ms" in r]
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    latency = [float(r["latency_ms"]) for r in processed]
    processing = [float(r["processing_time_ms"]) for r in processed if "processing_time_ms" in r]
    acks = [float(r["ack_ms"]) for r in processed if r.get("ack_ms", -1) >= 0]
    sent = sum(len(c) for c in clips)
    return LoadReport(
        streams=len(clips),
        fragments_per_stream=max((len(c) for c in clips), default=0),
        sent=sent,
        acked=len(acks),
        processed=len(processed),
        order_violations=violations,
        backpressure_events=backpressure,
        statuses=statuses,
        ack_ms_p99=percentile(acks, 99),
        latency_ms_p50=percentile(latency, 50),
        latency_ms_p95=percentile(latency, 95),
        latency_ms_p99=percentile(latency, 99),
        processing_ms_p50=percentile(processing, 50),
        processing_ms_p95=percentile(processing, 95),
        processing_ms_p99=percentile(processing, 99),
        wall_s=time.perf_counter() - started,
        fragments=rows,
    )
