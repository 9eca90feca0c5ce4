"""Peak memory of decoding one hostile fragment, measured in a fresh process (``python -m``).

Prints one JSON object: the payload's size, the error code the decoder raised (or null) and how far
the process's peak RSS rose while decoding. A fresh process is needed because peak RSS
(``ru_maxrss``) only ever grows: in the test process it would carry every earlier test's peak.

The payload is the issue's decompression bomb: 5 min of 192 kHz x 8-channel silence as FLAC
(476 kB), written in blocks so that building it does not raise the peak itself. ``unknown`` zeroes
the length in its STREAMINFO, as a FLAC written to a pipe has, so no header check can refuse it and
only the incremental decoder's own count stops it. ``longest`` is the largest fragment accepted:
exactly the 30 s limit at 192 kHz x 8 channels, decoded whole.
"""

from __future__ import annotations

import io
import json
import resource
import sys

import numpy as np
import soundfile as sf

RATE, CHANNELS, SECONDS, LIMIT_S = 192_000, 8, 300, 30


def bomb(unknown_length: bool, seconds: int = SECONDS) -> bytes:
    buffer = io.BytesIO()
    block = np.zeros((RATE, CHANNELS), dtype=np.int16)
    with sf.SoundFile(buffer, "w", RATE, CHANNELS, format="FLAC", subtype="PCM_16") as out:
        for _ in range(seconds):
            out.write(block)
    data = bytearray(buffer.getvalue())
    if unknown_length:
        # STREAMINFO follows "fLaC" and a 4-byte block header; its bytes 10-17 end with the
        # 36-bit total sample count.
        packed = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)
        data[18:26] = packed.to_bytes(8, "big")
    return bytes(data)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(variant: str) -> None:
    from livedub.runtime.audio.codec import decode
    from livedub.runtime.errors import DubbingError
    from livedub.runtime.protocol.events import AudioFormat

    data = bomb(unknown_length=variant == "unknown", seconds=LIMIT_S if variant == "longest" else SECONDS)
    before = _peak_mib()
    code = None
    try:
        decode(data, AudioFormat.FLAC, sample_rate=RATE, channels=CHANNELS, max_duration_s=LIMIT_S)
    except DubbingError as exc:
        code = str(exc.code)
    print(json.dumps({"bytes": len(data), "code": code, "peak_growth_mib": round(_peak_mib() - before, 1)}))


if __name__ == "__main__":
    main(sys.argv[1])
