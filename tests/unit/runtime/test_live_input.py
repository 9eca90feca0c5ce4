"""The live reader and the ordered writer of ``livedub dub`` on their own: real FLEURS speech, real files."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from livedub.runtime.audio.codec import resample
from livedub.runtime.client.dub import DubError
from livedub.runtime.client.live import STOP_GRACE_S, LiveSource, is_url
from livedub.runtime.client.wavout import OrderedWav
from support.data import fleurs


def _stereo_48k_ts(path: Path, seconds: float) -> np.ndarray:
    """A FLEURS clip's start as stereo 48 kHz AAC in MPEG-TS (a broadcast's shape); its 16 kHz mono."""
    speech, rate = fleurs("fleurs-en-000")
    mono = speech[: int(seconds * rate)]
    wide = resample(mono, rate, 48_000)
    with av.open(str(path), mode="w", format="mpegts") as out:
        stream = out.add_stream("aac", rate=48_000, layout="stereo")
        for start in range(0, len(wide), 1024):
            piece = np.repeat(wide[start : start + 1024], 2)[None, :].astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece), format="flt", layout="stereo")
            frame.sample_rate, frame.pts = 48_000, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return mono


async def test_a_stereo_48k_file_is_cut_into_paced_16k_mono_fragments(tmp_path, shared_data):
    mono = _stereo_48k_ts(tmp_path / "talk.ts", 3.2)
    source = await LiveSource.open(str(tmp_path / "talk.ts"), fragment_s=1.0)
    started = time.monotonic()
    arrivals, pieces = [], []
    async for chunk in source.fragments():
        arrivals.append(time.monotonic() - started)
        pieces.append(chunk)
    assert [len(p) for p in pieces[:3]] == [16000] * 3 and pieces[0].dtype == np.float32
    total = sum(map(len, pieces)) + len(source.tail)
    assert abs(total - len(mono)) <= 2048  # AAC priming and padding only
    # Paced: the third second is handed over no sooner than it has played.
    assert arrivals[2] >= 2.9, arrivals
    assert source.error is None


async def test_stop_hands_over_what_played_and_ends(tmp_path, shared_data):
    _stereo_48k_ts(tmp_path / "talk.ts", 6.0)
    source = await LiveSource.open(str(tmp_path / "talk.ts"), fragment_s=2.0)
    pieces = []
    loop = asyncio.get_running_loop()
    loop.call_later(2.5, source.stop)
    async for chunk in source.fragments():
        pieces.append(chunk)
    lengths = [len(p) for p in pieces]
    assert lengths[0] == 32000 and len(lengths) == 2 and 0.3 * 16000 <= lengths[1] <= 1.0 * 16000, lengths


async def test_unreadable_sources_are_one_line(tmp_path):
    with pytest.raises(DubError, match=r"no such file: .*nope\.ts"):
        await LiveSource.open(str(tmp_path / "nope.ts"), 6.0)
    (tmp_path / "junk.ts").write_bytes(b"not a transport stream" * 100)
    with pytest.raises(DubError, match=r"cannot open .*junk\.ts"):
        await LiveSource.open(str(tmp_path / "junk.ts"), 6.0)
    assert is_url("srt://127.0.0.1:9000") and is_url("https://x/index.m3u8") and not is_url("talk.ts")


def test_dubs_are_written_in_order_with_failures_as_their_original(tmp_path):
    rate = 16000
    originals = [np.full(800, v, np.float32) for v in (0.1, 0.2, 0.3)]
    out = tmp_path / "out.wav"
    with OrderedWav(out, rate) as wav:

        async def feed() -> None:
            async for _ in wav.track(_iterate(originals)):
                pass

        asyncio.run(feed())
        wav.put(1, np.full(400, -0.5, np.float32))  # arrives first: held until 0 is written
        assert sf.info(out).frames == 0
        wav.put(0, None)  # failed: its original goes out, then 1
        # Readable while still open (the header is kept up to date): what a kill would leave.
        shutil.copy(out, tmp_path / "killed.wav")
        assert sf.info(tmp_path / "killed.wav").frames == 800 + 400
        wav.finish(np.full(10, 0.9, np.float32))  # 2 never came back: its original, then the tail
        assert wav.offsets_s() == [0.0, 0.05, 0.1]
    written, _ = sf.read(out, dtype="float32")
    expected = np.concatenate([originals[0], np.full(400, -0.5), originals[2], np.full(10, 0.9)])
    assert np.allclose(written, expected, atol=1e-4)


async def _iterate(items: list[np.ndarray]):  # type: ignore[no-untyped-def]
    for item in items:
        yield item


async def test_stop_does_not_wait_for_a_stalled_network_read(tmp_path, shared_data):
    """A live source that stops sending mid-stream (open connection, no data): Ctrl-C still ends at once."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    _stereo_48k_ts(tmp_path / "talk.ts", 3.0)
    data = (tmp_path / "talk.ts").read_bytes()
    release = threading.Event()

    class Stalling(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            self.wfile.write(data)  # three seconds of audio, then silence on an open connection
            self.wfile.flush()
            release.wait(30)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = await LiveSource.open(f"http://127.0.0.1:{server.server_address[1]}/talk.ts", fragment_s=1.0)
        pieces = []
        async for chunk in source.fragments():
            pieces.append(chunk)
            if len(pieces) == 2:
                stopped_at = time.monotonic()
                source.stop()
        assert time.monotonic() - stopped_at < STOP_GRACE_S + 1.0
        assert len(pieces) >= 2
    finally:
        release.set()
        server.shutdown()
        server.server_close()
