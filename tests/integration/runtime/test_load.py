"""The load generator at CI size: N streams x M fragments, nothing lost, nothing reordered."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
LOADGEN = Path(__file__).resolve().parents[3] / "hack" / "loadgen.py"


async def test_loadgen_three_streams_everything_comes_back_in_order(make_server, tmp_path, shared_data):
    server = await make_server(pipeline_concurrency=3)
    out = tmp_path / "load.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(LOADGEN),
        "--url",
        server.url,
        "--streams",
        "3",
        "--fragments",
        "3",
        "--fragment-seconds",
        "3",
        "--max-seconds",
        "240",
        "--out",
        str(out),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    report = json.loads(out.read_text())
    assert report["sent"] == report["acked"] == report["processed"] == 9
    assert report["order_violations"] == 0
    assert report["ack_ms_p99"] < 2000  # acks come before processing, not after it
    assert report["rss_after_mb"] and report["rss_after_mb"] > 0
    assert json.loads(stdout)["processed"] == 9
