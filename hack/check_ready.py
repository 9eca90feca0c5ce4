"""Wait for a runtime to become ready, open a stream, and check the engines ``stream:ready`` reports.

    python hack/check_ready.py http://127.0.0.1:8000 --expect-tts kokoro [--source en --target es]

Used by hack/check-install.sh against a runtime installed by the image's own install step. Exits 1
with the reason when the runtime never gets ready, refuses the stream, or speaks with another engine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import urllib.request

import socketio


def wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError as exc:  # refused while starting, 503 while models load
            last = str(exc)
        time.sleep(0.5)
    raise SystemExit(f"FAIL: {url}/ready not 200 within {timeout_s:.0f} s ({last})")


async def open_stream(url: str, source: str, target: str) -> dict[str, object]:
    client = socketio.AsyncClient()
    await client.connect(url, transports=["websocket"])
    try:
        init = {
            "source_language": source,
            "target_language": target,
            "chunk_duration_ms": 6000,
            "sample_rate_hz": 16000,
            "channels": 1,
            "format": "pcm_s16le",
        }
        reply = await client.call("stream:init", init, timeout=30)
    finally:
        await client.disconnect()
    if not isinstance(reply, dict):
        raise SystemExit(f"FAIL: stream:init answered {reply!r}")
    return reply


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--expect-tts", required=True, help="the TTS engine stream:ready must name")
    parser.add_argument("--source", default="en")
    parser.add_argument("--target", default="es")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    wait_ready(args.url, args.timeout)
    ready = asyncio.run(open_stream(args.url, args.source, args.target))
    engines = ready.get("engines")
    tts = engines.get("tts") if isinstance(engines, dict) else None
    if tts != args.expect_tts:
        print(f"FAIL: stream:ready names TTS {tts!r}, expected {args.expect_tts!r}: {ready}", file=sys.stderr)
        return 1
    print(f">> stream:ready {args.source}->{args.target}: {engines}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
