"""Segments as the media-service worker makes them: one continuous AAC stream cut at ADTS frames.

The worker pulls a live programme, keeps its AAC track and cuts it every 282 frames of 1024 samples
(6.016 s at 48 kHz); each segment is raw ADTS, labelled ``m4a``. We encode real speech once with
PyAV (FFmpeg's AAC encoder) and cut it the same way, so segment 0 carries the encoder's priming and
the others start mid-stream, as on air.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

from livedub.runtime.audio.codec import resample

AAC_FRAME = 1024
WORKER_FRAMES = 282


def _frame_length(header: bytes) -> int:
    return ((header[3] & 0x03) << 11) | (header[4] << 3) | (header[5] >> 5)


def encode_adts(audio: np.ndarray, rate: int, *, out_rate: int = 48000, channels: int = 2) -> bytes:
    """Mono float32 ``audio`` at ``rate`` -> one continuous ADTS AAC stream at ``out_rate``."""
    samples = resample(audio.astype(np.float32), rate, out_rate)
    planar = np.repeat(samples[None, :], channels, axis=0)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="adts") as container:
        stream = container.add_stream("aac", rate=out_rate, layout="stereo" if channels == 2 else "mono")
        for start in range(0, planar.shape[1], AAC_FRAME):
            chunk = np.ascontiguousarray(planar[:, start : start + AAC_FRAME])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=stream.layout.name)
            frame.sample_rate = out_rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def split_frames(adts: bytes) -> list[bytes]:
    frames, position = [], 0
    while position + 7 <= len(adts):
        assert adts[position] == 0xFF and adts[position + 1] & 0xF0 == 0xF0, f"lost ADTS sync at {position}"
        length = _frame_length(adts[position : position + 7])
        frames.append(adts[position : position + length])
        position += length
    return frames


def worker_segments(audio: np.ndarray, rate: int, *, frames_per_segment: int = WORKER_FRAMES) -> list[bytes]:
    """Cut a programme into the worker's 282-frame ADTS segments (the last one may be shorter)."""
    frames = split_frames(encode_adts(audio, rate))
    return [b"".join(frames[i : i + frames_per_segment]) for i in range(0, len(frames), frames_per_segment)]


@dataclass(frozen=True)
class DecodedTrack:
    container: str
    codec: str
    sample_rate: int
    channels: int
    samples: int


def decode_track(data: bytes) -> DecodedTrack:
    """Demux and decode the first audio track, counting samples as a player would play them."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        total = sum(frame.samples for frame in container.decode(stream))
        return DecodedTrack(
            container=container.format.name,
            codec=stream.codec_context.name,
            sample_rate=stream.codec_context.sample_rate,
            channels=stream.codec_context.channels,
            samples=total,
        )
