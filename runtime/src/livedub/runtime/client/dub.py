"""``livedub dub``: stream a file through a runtime the way a live media worker does.

It is also the reference worker: it cuts audio into fragments, keeps at most ``max_inflight``
(from ``stream:ready``) outstanding, stops sending while the server says ``pause``/``reject``,
and, like the guide recommends for workers, falls back to the original audio for a fragment whose
dub failed. Results are written as one WAV plus a JSON report with per-fragment texts and timings;
when the output is a video container the dub is muxed beside the input's picture instead (``media``).

Failures the user can act on (no runtime at the URL, a refused ``stream:init``, a container that cannot
hold the input's streams) raise ``DubError`` with a one-line message; the CLI prints it, no traceback.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import socketio
import soundfile as sf
from tqdm import tqdm

from livedub.runtime.audio.codec import decode, resample
from livedub.runtime.client import media, vtt
from livedub.runtime.protocol.events import AudioFormat

#: The guide's wire format: 16 kHz mono s16le. 6 s of it is 192 kB, well under every limit.
WIRE_RATE = 16_000
_PAUSING_ACTIONS = {"pause", "reject"}
#: ISO 639-1 (the protocol's) -> ISO 639-2/T (what MP4 and Matroska language tags hold), for the dub's track.
_LANGUAGE_TAGS = {"en": "eng", "es": "spa", "fr": "fra", "ca": "cat", "de": "deu", "it": "ita", "pt": "por"}


class DubError(Exception):
    """A dub that cannot run for a reason the user can fix; ``str()`` is one line for the terminal."""


@dataclass(slots=True)
class DubOptions:
    url: str = "http://127.0.0.1:8000"
    source_language: str = "en"
    target_language: str = "es"
    voice_profile: str | None = None
    fragment_s: float = 6.0
    realtime: bool = False
    binary: bool = True
    token: str | None = None
    progress: bool = True
    stream_id: str | None = None
    worker_id: str = "livedub-cli"
    #: Seconds to wait before the first fragment (staggers many simulated live streams).
    start_delay_s: float = 0.0
    timeout_s: float = 300.0
    #: Video outputs: keep the input's audio as a second track after the dub.
    keep_original_audio: bool = False
    #: Ask for a label and a voice per speaker (stream:init ``speakers: "auto"``).
    speakers: bool = False
    #: Ask for timed captions and write ``<output>.<language>.vtt`` for both languages.
    captions: bool = False


@dataclass(slots=True)
class _Tracker:
    #: Fragments sent so far; the dub is done once sending ended and each has its result.
    sent: int
    window: asyncio.Semaphore
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent_at: dict[str, float] = field(default_factory=dict)
    #: Wall-clock send times, in the report: they line up with other processes' clocks (a live source's).
    sent_unix: dict[str, float] = field(default_factory=dict)
    ack_ms: dict[str, float] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    may_send: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    sending_ended: bool = False
    t0: float = field(default_factory=time.perf_counter)


def load_audio(path: Path) -> np.ndarray:
    """Any supported file as 16 kHz mono float32 (of a video, its first audio track)."""
    if media.is_video(path):  # a container that may carry pictures: read its audio track, not the bytes
        return media.read_audio(path, WIRE_RATE)
    suffix = path.suffix.lower().lstrip(".")
    fmt = AudioFormat(suffix) if suffix in AudioFormat._value2member_map_ else AudioFormat.M4A
    audio = decode(path.read_bytes(), fmt, sample_rate=WIRE_RATE, channels=1)
    return resample(audio.samples, audio.sample_rate, WIRE_RATE)


def split(samples: np.ndarray, fragment_s: float) -> list[np.ndarray]:
    size = int(fragment_s * WIRE_RATE)
    return [
        samples[i : i + size] for i in range(0, len(samples), size) if len(samples[i : i + size]) >= WIRE_RATE // 10
    ]


async def dub_file(
    input_path: Path, output_path: Path, options: DubOptions, report_path: Path | None = None
) -> dict[str, Any]:
    plan = check_paths(input_path, output_path)
    samples = load_audio(input_path)
    fragments = split(samples, options.fragment_s)
    stream_id = options.stream_id or f"dub-{uuid.uuid4().hex[:8]}"
    results = await dub_fragments(fragments, options, stream_id)
    dubbed = []
    for index, chunk in enumerate(fragments):
        result = results["fragments"][index]
        audio = result.pop("_audio", None)
        # A failed dub falls back to the original audio, as the guide tells workers to.
        dubbed.append(audio if audio is not None else chunk)
    # ``split`` drops a last sliver too short to dub (< 0.1 s); keep its original sound so the dub
    # is exactly as long as the input (and a muxed track as long as the picture).
    dubbed.append(samples[sum(len(chunk) for chunk in fragments) :])
    track = np.concatenate(dubbed)
    if plan is None:
        output_path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(output_path, track, WIRE_RATE, subtype="PCM_16")
    else:
        media.mux(
            input_path,
            output_path,
            track,
            WIRE_RATE,
            plan,
            keep_original=options.keep_original_audio,
            language=_LANGUAGE_TAGS.get(options.target_language),
        )
    report = {"input": str(input_path), "output": str(output_path), **results}
    if options.captions:
        offsets = np.cumsum([0] + [len(chunk) for chunk in fragments[:-1]]) / WIRE_RATE
        languages = (options.source_language, options.target_language)
        written = vtt.write_stream(output_path, results["fragments"], offsets.tolist(), languages)
        report["captions"] = [str(p) for p in written]
    write_report(report, output_path, report_path)
    return report


def write_report(report: dict[str, Any], output_path: Path, report_path: Path | None) -> None:
    report_file = report_path or output_path.with_suffix(".json")
    report_file.write_text(json.dumps(report, indent=2, ensure_ascii=False))


def check_live_output(output_path: Path) -> None:
    """A live dub is written as it goes: a sound file, not a container muxed after the end."""
    if media.needs_mux(output_path) or output_path.suffix.lstrip(".").upper() not in sf.available_formats():
        raise DubError(
            f"a live input is written as it plays: use .wav (or .flac), not {output_path.suffix or '(none)'}"
        )


def check_paths(input_path: Path, output_path: Path) -> media.MediaPlan | None:
    """Refuse, before any dubbing, what cannot be written; the muxing plan when the output is a container."""
    if not input_path.is_file():
        raise DubError(f"no such file: {input_path}")
    if media.needs_mux(output_path):
        return media.plan(input_path, output_path)
    if output_path.suffix.lstrip(".").upper() not in sf.available_formats():
        return media.plan(input_path, output_path)  # refuses, naming the suffixes that work
    return None


_Handler = Callable[[dict[str, Any]], Awaitable[None]]


def _on(client: socketio.AsyncClient, event: str) -> Callable[[_Handler], _Handler]:
    """``@client.on(event)`` with types: python-socketio is untyped, which would make every handler untyped."""

    def register(handler: _Handler) -> _Handler:
        client.on(event, handler)
        return handler

    return register


#: Called with each fragment's sequence number and its dubbed audio (None when its dub failed), as it arrives.
ResultSink = Callable[[int, np.ndarray | None], None]
Fragments = Iterable[np.ndarray] | AsyncIterable[np.ndarray]


async def dub_fragments(
    fragments: Fragments, options: DubOptions, stream_id: str, sink: ResultSink | None = None
) -> dict[str, Any]:
    """Send ``fragments`` (16 kHz mono float32) as one stream; return per-fragment results in order.

    ``fragments`` may be a list or an async iterator (a live input: each is sent as soon as it is
    cut). With a ``sink`` each dub is handed over on arrival and not kept, so a long stream's
    results hold only texts and timings.
    """
    # We own Engine.IO's HTTP session: when a connection fails python-socketio leaves its own open
    # ("Unclosed client session" at exit); ours is closed on every path.
    async with aiohttp.ClientSession() as http:
        return await _dub_fragments(fragments, options, stream_id, http, sink)


async def _each(fragments: Fragments) -> AsyncIterable[np.ndarray]:
    if isinstance(fragments, AsyncIterable):
        async for chunk in fragments:
            yield chunk
    else:
        for chunk in fragments:
            yield chunk


async def _dub_fragments(
    fragments: Fragments,
    options: DubOptions,
    stream_id: str,
    http: aiohttp.ClientSession,
    sink: ResultSink | None,
) -> dict[str, Any]:
    # Ctrl-C belongs to the CLI (a live input ends on it and still writes its table); python-socketio's
    # own handler would cancel every task in the process instead.
    client = socketio.AsyncClient(
        reconnection=False,
        http_session=http,
        handle_sigint=False,
        websocket_extra_options={"max_msg_size": 64 * 1024 * 1024},
    )
    tracker = _Tracker(sent=0, window=asyncio.Semaphore(1))
    tracker.may_send.set()
    ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    complete: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    @_on(client, "stream:ready")
    async def on_ready(data: dict[str, Any]) -> None:
        if not ready.done():
            ready.set_result(data)

    @_on(client, "fragment:processed")
    async def on_processed(data: dict[str, Any]) -> None:
        fid = data["fragment_id"]
        now = time.perf_counter()
        data["latency_ms"] = int((now - tracker.sent_at.get(fid, now)) * 1000)
        data["ack_ms"] = round(tracker.ack_ms.get(fid, -1.0), 2)
        data["received_at_s"] = round(now - tracker.t0, 3)
        first = fid not in tracker.results
        if sink is not None and first:
            sink(int(fid.rsplit("-", 1)[1]), _decode_result_audio(data))
            data.pop("dubbed_audio", None)
        tracker.results[fid] = data
        tracker.order.append(data.get("sequence_number", -1))
        if first:
            tracker.window.release()
            bar.update(1)
        if tracker.sending_ended and len(tracker.results) >= tracker.sent:
            tracker.done.set()

    @_on(client, "fragment:ack")
    async def on_ack(data: dict[str, Any]) -> None:
        fid = data.get("fragment_id", "")
        if fid in tracker.sent_at and fid not in tracker.ack_ms:
            tracker.ack_ms[fid] = (time.perf_counter() - tracker.sent_at[fid]) * 1000

    @_on(client, "backpressure")
    async def on_backpressure(data: dict[str, Any]) -> None:
        tracker.events.append({"event": "backpressure", **data})
        if data.get("action") in _PAUSING_ACTIONS:
            tracker.may_send.clear()
        else:
            tracker.may_send.set()

    @_on(client, "error")
    async def on_error(data: dict[str, Any]) -> None:
        tracker.events.append({"event": "error", **data})
        if not ready.done() and data.get("event") == "stream:init":
            ready.set_exception(RuntimeError(f"stream:init refused: {data.get('code')}: {data.get('message')}"))

    @_on(client, "stream:complete")
    async def on_complete(data: dict[str, Any]) -> None:
        if not complete.done():
            complete.set_result(data)

    refusals: list[Any] = []
    client.on("connect_error", refusals.append)

    token = options.token or os.environ.get("LIVEDUB_TOKEN")
    auth = {"stream_id": stream_id, "worker_id": options.worker_id, **({"token": token} if token else {})}
    try:
        await client.connect(
            options.url,
            headers={"X-Stream-ID": stream_id, "X-Worker-ID": options.worker_id},
            auth=auth,
            transports=["websocket"],
            wait_timeout=10,
        )
    except socketio.exceptions.ConnectionError as exc:
        # A server's own refusal (bad token, full pod) arrives in connect_error as a dict; anything
        # else means nothing answered at the URL.
        refusal = next((r for r in reversed(refusals) if isinstance(r, dict)), None)
        reason = (refusal.get("message") or str(refusal)) if refusal else "no runtime answered"
        hint = "" if refusal else " (start one with `livedub serve`, or drop --url to dub in this process)"
        raise DubError(f"cannot connect to {options.url}: {reason}{hint}") from exc
    # Created once connected, so a refused connection prints no empty progress bar.
    # Shown after a second only: a stream:init refused at once leaves no empty bar behind.
    total = len(fragments) if isinstance(fragments, list) else None  # a live input's is not known
    bar = tqdm(total=total, unit="frag", desc="dubbing", disable=not options.progress, delay=1.0)
    try:
        await client.emit(
            "stream:init",
            {
                "source_language": options.source_language,
                "target_language": options.target_language,
                **({"voice_profile": options.voice_profile} if options.voice_profile else {}),
                "chunk_duration_ms": int(options.fragment_s * 1000),
                "sample_rate_hz": WIRE_RATE,
                "channels": 1,
                "format": "pcm_s16le",
                **({"speakers": "auto"} if options.speakers else {}),
                **({"captions": True} if options.captions else {}),
            },
        )
        try:
            info = await asyncio.wait_for(ready, 60)
        except RuntimeError as exc:  # the refusal set by on_error
            raise DubError(str(exc)) from exc
        except TimeoutError as exc:
            raise DubError(f"{options.url} accepted the connection but never answered stream:init") from exc
        tracker.window = asyncio.Semaphore(int(info.get("max_inflight", 3)))
        await asyncio.sleep(options.start_delay_s)
        started = tracker.t0 = time.perf_counter()
        index = 0
        async for chunk in _each(fragments):
            if options.realtime:  # a live worker sends a fragment once it has been captured
                await asyncio.sleep(max(0.0, started + (index + 1) * options.fragment_s - time.perf_counter()))
            await tracker.window.acquire()
            await tracker.may_send.wait()
            await _send(client, tracker, stream_id, index, chunk, options.binary)
            tracker.sent = index = index + 1
        tracker.sending_ended = True
        if len(tracker.results) >= tracker.sent:
            tracker.done.set()
        try:
            await asyncio.wait_for(tracker.done.wait(), options.timeout_s)
        except TimeoutError as exc:
            missing = tracker.sent - len(tracker.results)
            raise DubError(f"{missing} of {tracker.sent} fragments unanswered after {options.timeout_s:.0f} s") from exc
        await client.emit("stream:end", {"stream_id": stream_id})
        summary_event = await asyncio.wait_for(complete, 60)
    finally:
        bar.close()
        await client.disconnect()
    return _report(tracker, stream_id, info, summary_event)


async def _send(
    client: socketio.AsyncClient, tracker: _Tracker, stream_id: str, index: int, chunk: np.ndarray, binary: bool
) -> None:
    pcm = (np.clip(chunk, -1, 1) * 32767).astype("<i2").tobytes()
    fid = f"{stream_id}-{index:06d}"
    tracker.sent_at[fid] = time.perf_counter()
    tracker.sent_unix[fid] = time.time()
    await client.emit(
        "fragment:data",
        {
            "fragment_id": fid,
            "stream_id": stream_id,
            "sequence_number": index,
            "timestamp": int(index * len(chunk) * 1000 / WIRE_RATE),
            "audio": pcm if binary else base64.b64encode(pcm).decode(),
            "sample_rate": WIRE_RATE,
            "channels": 1,
            "format": "pcm_s16le",
            "duration_ms": int(len(chunk) * 1000 / WIRE_RATE),
        },
    )


def _decode_result_audio(result: dict[str, Any]) -> np.ndarray | None:
    audio = result.get("dubbed_audio")
    if audio is None or result.get("status") == "failed":
        return None
    raw = audio if isinstance(audio, bytes) else base64.b64decode(audio)
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    return resample(samples, int(result.get("sample_rate", WIRE_RATE)), WIRE_RATE)


def _report(tracker: _Tracker, stream_id: str, info: dict[str, Any], complete: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for index in range(tracker.sent):
        fid = f"{stream_id}-{index:06d}"
        result = tracker.results.get(fid, {"status": "failed", "error": {"code": "NO_RESULT"}})
        row = {k: v for k, v in result.items() if k != "dubbed_audio"}
        row["sent_unix"] = round(tracker.sent_unix.get(fid, 0.0), 3)
        row["_audio"] = _decode_result_audio(result)
        rows.append(row)
    statuses = [r["status"] for r in rows]
    return {
        "stream_id": stream_id,
        "engines": info.get("engines"),
        "summary": {
            "fragments": len(rows),
            "success": statuses.count("success"),
            "partial": statuses.count("partial"),
            "failed": statuses.count("failed"),
            "in_order": tracker.order == sorted(tracker.order),
            "server": complete,
        },
        "events": tracker.events,
        "fragments": rows,
    }
