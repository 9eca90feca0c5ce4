"""The output of a live dub, written as the dubs arrive: in sequence order, one fragment at a time.

A fragment is written once it and every one before it have come back; one whose dub failed (or
never came) is written as its original sound, as the guide tells workers to do, so the output keeps
the input's timeline. Only fragments still waiting for their turn are held (at most the server's
window plus the input's queue). The header is brought up to date after each write, so a process
killed mid-stream still leaves a file players open; a normal end or a Ctrl-C closes it properly.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from types import TracebackType

import numpy as np
import soundfile as sf

#: libsndfile's SFC_SET_UPDATE_HEADER_AUTO: rewrite the header's sizes after every write.
_SFC_SET_UPDATE_HEADER_AUTO = 0x1061


class OrderedWav:
    def __init__(self, path: Path, rate: int) -> None:
        self.path = path
        self.rate = rate
        self._file: sf.SoundFile | None = None
        self._originals: dict[int, np.ndarray] = {}
        self._dubs: dict[int, np.ndarray | None] = {}
        self._next = 0
        self._lengths: list[int] = []

    def __enter__(self) -> OrderedWav:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = sf.SoundFile(self.path, "w", samplerate=self.rate, channels=1, subtype="PCM_16")
        # soundfile exposes no sf_command; its cffi handle does. Without it a kill leaves sizes of 0.
        sf._snd.sf_command(self._file._file, _SFC_SET_UPDATE_HEADER_AUTO, sf._ffi.NULL, 1)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._file is not None:
            self._file.close()

    async def track(self, fragments: AsyncIterable[np.ndarray]) -> AsyncIterator[np.ndarray]:
        """Pass ``fragments`` through, keeping each until its dub is written (its fallback)."""
        index = 0
        async for chunk in fragments:
            self._originals[index] = chunk
            index += 1
            yield chunk

    def put(self, index: int, dubbed: np.ndarray | None) -> None:
        """Fragment ``index``'s dub (None: it failed); writes every fragment whose turn has come."""
        self._dubs[index] = dubbed
        while self._next in self._dubs:
            self._write(self._next, self._dubs.pop(self._next))

    def finish(self, tail: np.ndarray) -> None:
        """Write what never came back as its original, then ``tail`` (the input's last, unsent sliver)."""
        for index in sorted(self._originals):
            if index >= self._next:
                self._write(index, self._dubs.pop(index, None))
        if len(tail):
            self._emit(tail)

    def offsets_s(self) -> list[float]:
        """Each written fragment's start in the output, in seconds (for captions)."""
        starts = np.cumsum([0, *self._lengths[:-1]]) / self.rate if self._lengths else np.zeros(0)
        return [float(s) for s in starts]

    def _write(self, index: int, dubbed: np.ndarray | None) -> None:
        original = self._originals.pop(index)
        self._lengths.append(len(original))
        self._emit(original if dubbed is None else dubbed)
        self._next = index + 1

    def _emit(self, samples: np.ndarray) -> None:
        assert self._file is not None
        self._file.write(np.clip(samples, -1.0, 1.0))
        self._file.flush()
