"""``livedub dub`` on live inputs, as a user runs it: a real process reading a real, growing HLS playlist
over loopback HTTP (FLEURS speech in MPEG-TS/AAC segments), in-process and through ``--url``.

"Incremental" is proven, not assumed: the broadcast only advances in real time once it is read
(``support.hls``), so a reader that waited for the end could not have sent its first fragment
before the last segment was fetched.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from support.data import FLEURS, fleurs
from support.hls import LiveHLS, make_segments

pytestmark = pytest.mark.slow
LIVEDUB = [sys.executable, "-m", "livedub.runtime.cli"]
FRAGMENT_S = 3.0


def _check_live_dub(out: Path, report: dict, hls: LiveHLS, original: np.ndarray) -> None:
    dubbed, rate = sf.read(out, dtype="float32")
    assert rate == 16000
    # The input's length, give or take the tail (AAC priming and padding, the last partial piece).
    assert abs(len(dubbed) - len(original)) <= FRAGMENT_S * rate, (len(dubbed), len(original))
    assert np.sqrt(np.mean(dubbed**2)) > 0.01
    rows = report["fragments"]
    assert report["live"] and len(rows) >= 3 and report["summary"]["in_order"]
    assert sum(r["status"] != "failed" for r in rows) >= len(rows) - 1
    last_segment = len(hls.segments) - 1
    assert last_segment in hls.fetched_at  # read to its end (EXT-X-ENDLIST)
    first_sent = rows[0]["sent_unix"]
    # Incremental: the first fragment left while the broadcast still had seconds to go.
    assert first_sent < hls.fetched_at[last_segment] - FRAGMENT_S, (first_sent, hls.fetched_at[last_segment])
    print(
        f"first fragment sent {hls.fetched_at[last_segment] - first_sent:.1f} s before the last segment was read; "
        f"{len(rows)} fragments"
    )


@pytest.fixture
def broadcast(tmp_path, shared_data):
    speech, rate = fleurs("fleurs-en-000")
    segments = make_segments(tmp_path / "hls", speech, rate, segment_s=1.0)
    assert len(segments) >= 8
    with LiveHLS(tmp_path / "hls", segments) as hls:
        yield hls, speech


def test_a_growing_hls_playlist_is_dubbed_as_it_plays_in_process(tmp_path, broadcast):
    hls, speech = broadcast
    result = subprocess.run(
        [*LIVEDUB, "dub", hls.url, "--to", "es", "-o", "out.wav", "--fragment-seconds", str(FRAGMENT_S), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "seq  status   latency" in result.stderr and "Traceback" not in result.stderr
    report = json.loads((tmp_path / "out.json").read_text())
    _check_live_dub(tmp_path / "out.wav", report, hls, speech)


async def test_a_growing_hls_playlist_through_a_runtime_url(tmp_path, broadcast, make_server):
    hls, speech = broadcast
    server = await make_server()
    process = await asyncio.create_subprocess_exec(
        *LIVEDUB,
        "dub",
        hls.url,
        "--url",
        server.url,
        "-o",
        "out.wav",
        "--fragment-seconds",
        str(FRAGMENT_S),
        "--captions",
        "-q",
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode == 0, stderr.decode()[-3000:]
    report = json.loads((tmp_path / "out.json").read_text())
    _check_live_dub(tmp_path / "out.wav", report, hls, speech)
    # Captions of a live dub are timed on the input's timeline, like a file's.
    cues = [line for line in (tmp_path / "out.es.vtt").read_text().splitlines() if " --> " in line]
    assert cues and (tmp_path / "out.en.vtt").read_text().startswith("WEBVTT")


def test_ctrl_c_stops_a_live_file_and_leaves_a_valid_wav_with_the_table(tmp_path, shared_data):
    source = FLEURS / "fleurs-en-000.ogg"
    process = subprocess.Popen(
        [*LIVEDUB, "dub", str(source), "--live", "-o", "out.wav", "--fragment-seconds", "2", "-q"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out = tmp_path / "out.wav"
    deadline = time.monotonic() + 120
    # The output is opened as the input starts to play; paced at real time, the 10.6 s clip is still
    # playing 3 s later, whatever the machine's load.
    while time.monotonic() < deadline and not out.exists():
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.1)
    time.sleep(3.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    assert "stopping the input" in stderr and "seq  status   latency" in stderr and "Traceback" not in stderr
    dubbed, rate = sf.read(out, dtype="float32")
    original, _ = fleurs("fleurs-en-000")
    assert rate == 16000 and 2 * rate <= len(dubbed) < len(original) - 2 * rate  # stopped early, not at the end
    report = json.loads((tmp_path / "out.json").read_text())
    # What was read before the Ctrl-C was still dubbed: nothing in flight was dropped.
    assert report["fragments"] and all((r.get("error") or {}).get("code") != "NO_RESULT" for r in report["fragments"])


def test_an_unreachable_live_url_is_one_line_before_any_engine_loads(tmp_path, shared_data):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/index.m3u8"
    started = time.perf_counter()
    result = subprocess.run(
        [*LIVEDUB, "dub", url, "-o", "out.wav"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"livedub: cannot open {url}: ") and "Traceback" not in result.stderr
    assert time.perf_counter() - started < 15  # refused before the engines load
    assert not (tmp_path / "out.wav").exists()


def test_a_live_input_into_a_video_container_is_refused(tmp_path, shared_data):
    result = subprocess.run(
        [*LIVEDUB, "dub", "srt://127.0.0.1:9/", "-o", "out.mp4"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "livedub: a live input is written as it plays: use .wav (or .flac), not .mp4"
