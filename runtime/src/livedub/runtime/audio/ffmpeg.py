"""FFmpeg (PyAV) for the formats libsndfile cannot handle: M4A/AAC, raw ADTS AAC and MP3.

Decoding is incremental and bounded: frames are mixed to mono as they come out of the decoder and
the count is checked against the caller's limit after every frame, so a tiny payload that expands
into hours of audio (a decompression bomb) stops at the limit instead of filling memory (issue 11,
item 5). Where the container carries real timing (MP4's sample tables) its declared duration is
checked before decoding starts.

Only MP4 timing is used to trim: FFmpeg computes raw ADTS's (and header-less MP3's) ``duration``
from the bitrate, which for a mostly silent segment was half its length (6.016 s cut to 3.584 s,
issue 11, item 6). Raw ADTS therefore decodes to every frame it carries.

Encoding uses FFmpeg's channel layouts for 1-8 channels; MP3 carries at most two (see
:data:`MAX_CHANNELS`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from fractions import Fraction
from typing import Literal

import av
import numpy as np

from livedub.runtime.engines.base import Samples

#: The layout each channel count is given on output. They are AAC's channel configurations 1-7
#: (7.1 is configuration 7) and Vorbis/Opus mapping family 1, so a decoder needs no extra table;
#: 6.1 (7 channels) has no AAC configuration and is written with a program config element.
LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}

#: FFmpeg encoders used below. A Literal (each is one of PyAV's audio codec names) so ``add_stream``
#: is typed as returning an ``AudioStream``.
_Codec = Literal["aac", "libmp3lame", "pcm_s16le"]
#: Container and codec per output format name.
OUTPUTS: dict[str, tuple[str, _Codec]] = {
    "m4a": ("ipod", "aac"),
    "aac": ("adts", "aac"),
    "mp3": ("mp3", "libmp3lame"),
    "wav": ("wav", "pcm_s16le"),
}
#: Channels a format can carry; beyond it the (mono) dub is written with this many.
MAX_CHANNELS = {"mp3": 2}
#: FFmpeg's AAC encoder primes every stream with one frame. Raw ADTS has nowhere to mark it, so
#: decoders play it as delay: we start the encoder that many samples into the dub instead, and the
#: decoded ADTS lines up with the input sample for sample (its first frame is the priming).
_AAC_PRIMING = 1024

#: Decoder outputs are checked against the limit after each frame; this raises the caller's error.
TooLong = Callable[[float], Exception]


def _has_real_timing(container: av.container.InputContainer) -> bool:
    # FFmpeg's MP4 demuxer ("mov,mp4,m4a,3gp,3g2,mj2") reads durations from the sample tables.
    return "mp4" in container.format.name.split(",")


def _mono(frame: av.AudioFrame) -> Samples:
    # The resampler's output is packed float ("flt") mono: one row of float32.
    return np.asarray(frame.to_ndarray().reshape(-1), dtype=np.float32)


def decode(
    data: bytes, *, max_duration_s: float | None, too_long: TooLong, keep_channels: bool = False
) -> tuple[Samples, int, int]:
    """Decode to mono float32; returns (samples, rate, channels). Raises FFmpeg's errors as they are.

    With ``keep_channels`` the samples are frames x channels instead (a mix lays the dub over them).
    """
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = next(iter(container.streams.audio), None)
        if stream is None:
            raise ValueError("payload has no audio stream")
        channels = stream.codec_context.channels or 1
        rate = stream.codec_context.sample_rate
        timed = _has_real_timing(container)
        declared_s = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
        if timed and max_duration_s is not None and declared_s > max_duration_s:
            raise too_long(declared_s)
        limit = None if max_duration_s is None else int(max_duration_s * rate)
        keep = keep_channels and channels > 1
        layout = stream.codec_context.layout.name if keep else "mono"
        resampler = av.AudioResampler(format="flt", layout=layout, rate=rate)
        width = channels if keep else 1
        chunks: list[Samples] = []
        total = 0
        end = 0  # where the last packet ends, in samples: MP4's exact length
        for packet in container.demux(stream):
            if packet.pts is not None and packet.duration and packet.time_base:
                end = max(end, int((packet.pts + packet.duration) * packet.time_base * rate))
            for frame in packet.decode():
                for out in resampler.resample(frame):
                    chunks.append(_mono(out).reshape(-1, width))
                    total += out.samples
            if limit is not None and total > limit:
                raise too_long(total / rate)
        chunks += [_mono(out).reshape(-1, width) for out in resampler.resample(None)]
    samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros((0, width), np.float32)
    if not keep:
        samples = samples.reshape(-1)
    if timed and 0 < end < len(samples):
        # MP4 marks the AAC priming in its edit list (FFmpeg skips it) and each packet's real
        # duration in its sample table, so the last packet's end is the exact length; the rest of
        # the last 1024-sample frame is padding. (The stream's ``duration`` is rounded to the movie
        # timescale, milliseconds: 7 samples short at 48 kHz.)
        samples = samples[:end]
    return samples, int(rate), int(channels)


def supported_rate(fmt: str, sample_rate: int) -> int:
    """The rate ``fmt``'s encoder will run at: the request, else the nearest one above it (or the top)."""
    rates = sorted(av.codec.Codec(OUTPUTS[fmt][1], "w").audio_rates or ())
    if not rates or sample_rate in rates:
        return sample_rate
    return next((r for r in rates if r >= sample_rate), rates[-1])


def encode(frames: np.ndarray, fmt: str, sample_rate: int) -> bytes:
    """Encode ``frames`` (samples x channels, float32 in [-1, 1]) with FFmpeg at a supported rate."""
    container_name, codec = OUTPUTS[fmt]
    layout = LAYOUTS[frames.shape[1]]
    if fmt == "aac" and len(frames) > _AAC_PRIMING:
        frames = frames[_AAC_PRIMING:]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_name) as container:
        stream = container.add_stream(codec, rate=sample_rate, layout=layout)
        # Packed float (one plane of interleaved samples) with the real layout: PyAV 18 miscounts
        # the planes of an 8-channel planar frame, and the encoder converts to its own format anyway.
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(frames.reshape(1, -1), dtype=np.float32), format="flt", layout=layout
        )
        frame.sample_rate = sample_rate
        # A timestamp lets the AAC encoder mark its priming (1024 samples) with a negative start,
        # which the MP4 muxer turns into an edit list: decoders then skip it and the dub stays in
        # sync with the picture. Without one the priming played as 64 ms of delay (at 16 kHz).
        frame.pts = 0
        frame.time_base = Fraction(1, sample_rate)
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
