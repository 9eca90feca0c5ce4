"""The measurements behind ``make bench``: each returns a JSON-able dict (and keeps raw rows).

All traffic goes through a real ``livedub serve`` process over loopback, driven by the same client
workers use. Ratios matter more than absolute numbers on a shared 2-core machine: every figure is
reported next to the fragment duration it must beat.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bench.server import serve
from livedub.runtime.client.dub import load_audio, split
from livedub.runtime.client.load import percentile, run_load

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data").resolve()
FRAGMENT_S = 6.0
STAGES = ("asr_ms", "translation_ms", "tts_ms", "duration_match_ms")


def english_fragments() -> list[np.ndarray]:
    fragments: list[np.ndarray] = []
    for path in sorted((DATA / "fleurs").glob("fleurs-en-*.ogg")):
        fragments += split(load_audio(path), FRAGMENT_S)
    return fragments


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values) if values else float("nan"),
        "n": len(values),
    }


def latency(out: Path, fragments: int) -> dict[str, Any]:
    """One live stream paced in real time: latency per fragment and per stage, overhead, memory."""
    clips = english_fragments()[:fragments]
    with serve(out / "latency-server.log") as server:
        rss_start = server.rss_mb()
        report = asyncio.run(run_load(server.url, [clips], realtime=True, fragment_s=FRAGMENT_S, keep_audio=True))
        rss_end = server.rss_mb()
        startup_s = server.startup_s
    rows = [r for r in report.fragments if "processing_time_ms" in r]
    speech = [r for r in rows if r.get("transcript")]
    durations = [r["metadata"]["original_duration_ms"] for r in rows if r.get("metadata")]
    ratio = [r["processing_time_ms"] / d for r, d in zip(rows, durations, strict=False) if d]
    overhead = [
        r["processing_time_ms"] - sum(r["stage_timings"].get(k, 0) for k in STAGES)
        for r in rows
        if r.get("stage_timings")
    ]
    variance = [r["metadata"]["duration_variance_percent"] / 100 for r in speech if r.get("metadata")]
    return {
        "fragments": len(rows),
        "processing_ms": _stats([float(r["processing_time_ms"]) for r in rows]),
        "processing_over_duration": _stats(ratio),
        "end_to_end_ms": _stats([float(r["latency_ms"]) for r in rows]),
        "stages_ms": {
            k: _stats([float(r["stage_timings"].get(k, 0)) for r in speech if r.get("stage_timings")]) for k in STAGES
        },
        "server_overhead_ms": _stats(overhead),
        "server_overhead_fraction": statistics.fmean(overhead)
        / max(1.0, statistics.fmean([r["processing_time_ms"] for r in rows])),
        "duration_variance": _stats(variance),
        "within_2_percent": sum(v <= 0.02 for v in variance) / max(1, len(variance)),
        "speed_ratio": _stats([r["metadata"]["speed_ratio"] for r in speech if r.get("metadata")]),
        "statuses": report.statuses,
        "lost": report.sent - report.processed,
        "order_violations": report.order_violations,
        "rss_mb_after_start": rss_start,
        "rss_mb_after_run": rss_end,
        "startup_s": startup_s,
        "_rows": rows,
    }


def throughput(out: Path, levels: list[int], fragments: int, windows_ms: list[int]) -> dict[str, Any]:
    """Concurrent real-time streams until p95 processing exceeds the fragment duration."""
    pool = english_fragments()
    results: dict[str, Any] = {}
    steps = [(w, n) for w in windows_ms for n in levels]
    for window, streams in tqdm(steps, desc="throughput", unit="level"):
        clips = [[pool[(s * 5 + i) % len(pool)] for i in range(fragments)] for s in range(streams)]
        env = {
            "ASR_BATCH_WINDOW_MS": str(window),
            "PIPELINE_CONCURRENCY": str(max(2, streams)),
            "BACKPRESSURE_THRESHOLD_CRITICAL": "50",
            "MAX_INFLIGHT": "8",
        }
        with serve(out / f"throughput-{window}-{streams}.log", **env) as server:
            report = asyncio.run(
                run_load(server.url, clips, realtime=True, fragment_s=FRAGMENT_S, stagger_s=FRAGMENT_S / streams)
            )
            calls = server.metric("sts_asr_model_calls_total") or 0.0
        results.setdefault(f"window_{window}ms", []).append(
            {
                "streams": streams,
                "processing_p95_ms": report.processing_ms_p95,
                "processing_p50_ms": report.processing_ms_p50,
                "end_to_end_p95_ms": report.latency_ms_p95,
                "lost": report.sent - report.processed,
                "order_violations": report.order_violations,
                "asr_model_calls": calls,
                "fragments": report.sent,
                "keeps_up": report.processing_ms_p95 <= FRAGMENT_S * 1000,
            }
        )
    sustained = {key: max((r["streams"] for r in rows if r["keeps_up"]), default=0) for key, rows in results.items()}
    return {"levels": results, "sustained_streams": sustained}


def soak(out: Path, minutes: float) -> dict[str, Any]:
    """One real-time stream for ``minutes``; resident memory sampled as it runs."""
    pool = english_fragments()
    count = max(1, int(minutes * 60 / FRAGMENT_S))
    clips = [[pool[i % len(pool)] for i in range(count)]]
    samples: list[tuple[float, float]] = []
    with serve(out / "soak-server.log") as server:

        async def sample(stop: asyncio.Event) -> None:
            start = time.perf_counter()
            while not stop.is_set():
                samples.append((time.perf_counter() - start, await asyncio.to_thread(server.rss_mb)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 15)

        async def run() -> Any:
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample(stop))
            report = await run_load(server.url, clips, realtime=True, fragment_s=FRAGMENT_S)
            stop.set()
            await sampler
            return report

        report = asyncio.run(run())
    rss = [mb for _, mb in samples]
    warm = rss[len(rss) // 4 :] or rss
    return {
        "minutes": minutes,
        "fragments": report.sent,
        "lost": report.sent - report.processed,
        "rss_mb": samples,
        "rss_first_mb": rss[0] if rss else None,
        "rss_max_mb": max(rss) if rss else None,
        "rss_growth_after_warmup_mb": (warm[-1] - warm[0]) if warm else None,
    }
