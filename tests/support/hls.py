"""A live HLS broadcast on loopback: real MPEG-TS/AAC segments (muxed by FFmpeg through PyAV) behind a
playlist that grows while it is watched, as a live encoder's does, and ends with ``EXT-X-ENDLIST``.

The next segment appears only once the previous one has been fetched *and* its duration has passed
since it appeared: the broadcast runs in real time from the moment a reader starts reading, however
long the reader took to load its engines, so a test can tell an incremental reader (it dubs while
segments keep coming) from one that waits for the end.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

import av
import numpy as np


def make_segments(folder: Path, samples: np.ndarray, rate: int, segment_s: float = 1.0) -> list[tuple[str, float]]:
    """Encode mono ``samples`` as AAC in MPEG-TS segments of about ``segment_s``; [(file name, seconds)]."""
    folder.mkdir(parents=True, exist_ok=True)
    playlist = folder / "encoded.m3u8"
    options = {"hls_time": str(segment_s), "hls_list_size": "0", "hls_segment_filename": str(folder / "seg%03d.ts")}
    with av.open(str(playlist), mode="w", format="hls", options=options) as out:
        stream = out.add_stream("aac", rate=rate, layout="mono")
        for start in range(0, len(samples), 1024):
            piece = np.ascontiguousarray(samples[None, start : start + 1024], np.float32)
            frame = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    segments, duration = [], 0.0
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line.split(":", 1)[1].rstrip(","))
        elif line and not line.startswith("#"):
            segments.append((line, duration))
    return segments


@dataclass
class LiveHLS:
    folder: Path
    segments: list[tuple[str, float]]
    published_at: list[float] = field(default_factory=list)
    #: First request time (``time.time()``) of each segment, by index.
    fetched_at: dict[int, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def __enter__(self) -> LiveHLS:
        self.published_at = [time.time()]
        live = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                if name == "index.m3u8":
                    body = live.playlist().encode()
                    kind = "application/vnd.apple.mpegurl"
                else:
                    names = [n for n, _ in live.segments]
                    if name not in names:
                        self.send_error(404)
                        return
                    with live.lock:
                        live.fetched_at.setdefault(names.index(name), time.time())
                    body, kind = (live.folder / name).read_bytes(), "video/mp2t"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/index.m3u8"
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()

    def playlist(self) -> str:
        with self.lock:
            now = time.time()
            while len(self.published_at) < len(self.segments):
                last = len(self.published_at) - 1
                due = self.published_at[last] + self.segments[last][1]
                if last not in self.fetched_at or now < due:
                    break
                self.published_at.append(max(due, self.fetched_at[last]))
            shown = self.segments[: len(self.published_at)]
            ended = len(shown) == len(self.segments)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{math.ceil(max(d for _, d in self.segments))}",
            "#EXT-X-MEDIA-SEQUENCE:0",
        ]
        for name, duration in shown:
            lines += [f"#EXTINF:{duration:.6f},", name]
        if ended:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"
