"""Live inputs for ``livedub dub``: any URL FFmpeg opens (HLS ``.m3u8``, ``rtmp://``, ``srt://``, ...), or a file
played at real time with ``--live``, cut into fragments as the audio arrives.

FFmpeg's reads block, so the demuxing, decoding and resampling run in one thread; fragments cross
to the event loop through a queue of two. When the dub falls behind (the server's window is full,
or it said ``pause``) the thread waits on that queue and FFmpeg stops reading: memory stays bounded
by the queue, never by the stream's length. A network source paces itself (a live HLS playlist
grows as the broadcast goes on); a file is paced here, by the wall clock, as a capture card would.

Opening is separate from reading so that an unreachable URL is refused before any engine loads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import numpy as np

from livedub.runtime.client.dub import WIRE_RATE, DubError, DubOptions, dub_fragments, write_report
from livedub.runtime.client.wavout import OrderedWav

#: Seconds FFmpeg waits to open a source, then for each read: a live source silent that long has ended.
OPEN_TIMEOUT_S = 15.0
READ_TIMEOUT_S = 30.0
#: After a stop, how long the reader may take to hand over its last piece: a stalled network read
#: (a live playlist that stopped growing) is abandoned, not waited for.
STOP_GRACE_S = 2.0
#: A last piece shorter than this is not sent (the server would refuse it); its original sound is kept.
MIN_FRAGMENT = WIRE_RATE // 10
_END = object()


def is_url(source: str) -> bool:
    """Whether ``source`` names a stream rather than a file (``scheme://...``; FFmpeg decides which it reads)."""
    return "://" in source


class LiveSource:
    """One opened live input; ``fragments()`` yields 16 kHz mono float32 pieces of ``fragment_s`` seconds."""

    def __init__(self, container: Any, name: str, fragment_s: float, paced: bool) -> None:
        self._container = container
        self.name = name
        self._size = int(fragment_s * WIRE_RATE)
        self._paced = paced
        self._stop = threading.Event()  # read no further (Ctrl-C); what was read is still handed over
        self._closed = threading.Event()  # no one reads the queue any more: hand over nothing
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=2)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = asyncio.Event()
        self._thread: threading.Thread | None = None
        #: Why reading ended early (a broken stream), for the user; None at a clean end.
        self.error: str | None = None
        #: The last sliver under ``MIN_FRAGMENT``: written as it is, so the output has the input's length.
        self.tail = np.zeros(0, np.float32)

    @classmethod
    async def open(cls, source: str, fragment_s: float) -> LiveSource:
        """Open ``source`` (in a thread: FFmpeg may wait on the network); a ``DubError`` naming it if it cannot."""
        paced = not is_url(source)  # a file would be read as fast as the disk goes
        if paced and not await asyncio.to_thread(Path(source).is_file):
            raise DubError(f"no such file: {source}")
        try:
            container = await asyncio.to_thread(av.open, source, timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S))
        except (av.FFmpegError, OSError) as exc:
            raise DubError(f"cannot open {source}: {exc}") from exc
        if not container.streams.audio:
            container.close()
            raise DubError(f"{source} has no audio stream to dub")
        return cls(container, source, fragment_s, paced)

    def stop(self) -> None:
        """End the input where it is (Ctrl-C): what was read is still sent, then the stream ends."""
        self._stop.set()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)

    async def fragments(self) -> AsyncIterator[np.ndarray]:
        self._loop = asyncio.get_running_loop()
        # A daemon: a read blocked on a dead network source must not keep the process alive at exit.
        self._thread = threading.Thread(target=self._pump, name="livedub-live-input", daemon=True)
        self._thread.start()
        try:
            while (item := await self._next()) is not _END:
                yield item
        finally:
            self._stop.set()
            self._closed.set()

    async def _next(self) -> Any:
        """The next piece; once stopped, ``_END`` if the reader does not answer within ``STOP_GRACE_S``."""
        if not self._stopped.is_set():
            get = asyncio.ensure_future(self._queue.get())
            stopped = asyncio.ensure_future(self._stopped.wait())
            await asyncio.wait({get, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if get.done():
                return get.result()
            get.cancel()
        try:
            return await asyncio.wait_for(self._queue.get(), STOP_GRACE_S)
        except TimeoutError:
            return _END

    def _put(self, item: Any) -> bool:
        """Hand ``item`` to the loop, waiting while the queue is full; False once no one reads it."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
        while True:
            try:
                future.result(timeout=0.5)
                return True
            except concurrent.futures.TimeoutError:
                if self._closed.is_set():
                    future.cancel()
                    return False
            except (concurrent.futures.CancelledError, RuntimeError):  # the loop is gone
                return False

    def _pump(self) -> None:
        pieces: list[np.ndarray] = []
        held = 0
        emitted = 0
        started = time.monotonic()
        try:
            stream = self._container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=WIRE_RATE)
            frames = (out for frame in self._container.decode(stream) for out in resampler.resample(frame))
            for out in frames:
                pieces.append(out.to_ndarray().reshape(-1))
                held += out.samples
                while held >= self._size:
                    audio = np.concatenate(pieces)
                    chunk, rest = audio[: self._size], audio[self._size :]
                    pieces, held = [rest], len(rest)
                    emitted += len(chunk)
                    if self._paced and self._stop.wait(max(0.0, started + emitted / WIRE_RATE - time.monotonic())):
                        # Stopped while this piece was playing: what had played goes out, the rest never did.
                        played = int((time.monotonic() - started) * WIRE_RATE) - (emitted - len(chunk))
                        pieces = [chunk[: max(0, played)]]
                        break
                    if not self._put(chunk):
                        return
                if self._stop.is_set():
                    break
        except av.FFmpegError as exc:
            self.error = f"{self.name} ended early: {exc}"
        finally:
            self._container.close()
            rest = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
            if len(rest) >= MIN_FRAGMENT:
                self._put(rest.astype(np.float32))
            else:
                self.tail = rest.astype(np.float32)
            self._put(_END)


async def dub_live(
    source: LiveSource, output_path: Path, options: DubOptions, stream_id: str, report_path: Path | None = None
) -> dict[str, Any]:
    """Dub ``source`` as it plays; each dub is written to ``output_path`` as soon as its turn comes."""
    from livedub.runtime.client import vtt

    with OrderedWav(output_path, WIRE_RATE) as out:
        results = await dub_fragments(out.track(source.fragments()), options, stream_id, sink=out.put)
        out.finish(source.tail)
        offsets = out.offsets_s()
    for row in results["fragments"]:
        row.pop("_audio", None)
    report: dict[str, Any] = {"input": source.name, "output": str(output_path), "live": True, **results}
    if source.error:
        report["input_error"] = source.error
    if options.captions:
        languages = (options.source_language, options.target_language)
        written = vtt.write_stream(output_path, results["fragments"], offsets, languages)
        report["captions"] = [str(p) for p in written]
    write_report(report, output_path, report_path)
    return report
