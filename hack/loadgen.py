"""Drive N live streams x M fragments through a running runtime and report what came back.

    python hack/loadgen.py --url http://127.0.0.1:8000 --streams 4 --fragments 10 [--realtime]

Bounded by design: a fixed number of fragments and a wall-clock limit (--max-seconds); traffic goes
only to the URL given (use loopback). Exit status 1 when fragments were lost or reordered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path

import aiohttp
import numpy as np

from livedub.runtime.client.dub import load_audio, split
from livedub.runtime.client.load import run_load

DEFAULT_CLIPS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fleurs"


async def _rss(url: str) -> float | None:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
            text = await response.text()
    except aiohttp.ClientError:
        return None
    match = re.search(r"^process_resident_memory_bytes (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def clips_for(streams: int, fragments: int, clip_dir: Path, fragment_s: float) -> list[list[np.ndarray]]:
    pool: list[np.ndarray] = []
    for path in sorted(clip_dir.glob("*-en-*.ogg")) or sorted(clip_dir.glob("*.ogg")):
        pool += split(load_audio(path), fragment_s)
    if not pool:
        raise SystemExit(f"no clips in {clip_dir}")
    return [[pool[(s * 7 + i) % len(pool)] for i in range(fragments)] for s in range(streams)]


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--fragments", type=int, default=5)
    parser.add_argument("--fragment-seconds", type=float, default=6.0)
    parser.add_argument("--realtime", action="store_true")
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--token")
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    args = parser.parse_args(argv)

    clips = clips_for(args.streams, args.fragments, args.clips, args.fragment_seconds)
    rss_before = await _rss(args.url)
    report = await asyncio.wait_for(
        run_load(
            args.url,
            clips,
            realtime=args.realtime,
            fragment_s=args.fragment_seconds,
            token=args.token,
            stagger_s=args.fragment_seconds / max(1, args.streams) if args.realtime else 0.0,
        ),
        args.max_seconds,
    )
    rss_after = await _rss(args.url)
    summary = {
        **report.summary(),
        "rss_before_mb": rss_before and rss_before / 2**20,
        "rss_after_mb": rss_after and rss_after / 2**20,
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**summary, "fragments": report.fragments}, indent=2, default=str))
    lost = report.sent - report.processed
    if lost or report.order_violations:
        print(f"FAIL: {lost} fragments lost, {report.order_violations} streams out of order", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
