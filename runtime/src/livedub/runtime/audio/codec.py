"""Audio in and out of the wire: decode any accepted format to mono float32, encode back.

Raw PCM is parsed with numpy; WAV, FLAC and Ogg go through libsndfile (``soundfile``); M4A/AAC and
MP3 through FFmpeg (``av``), the same libraries a media worker uses, so what it sends is what we
read. All failures become ``INVALID_AUDIO`` at stage ``decode``: a broken fragment never reaches an
engine. Resampling uses libsoxr (``soxr``), a band-limited resampler that does not alias speech.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import av
import numpy as np
import soundfile as sf
import soxr

from livedub.runtime.engines.base import Samples
from livedub.runtime.errors import DubbingError, ErrorCode, Stage
from livedub.runtime.protocol.events import AudioFormat

_SOUNDFILE_FORMATS = {AudioFormat.WAV: "WAV", AudioFormat.FLAC: "FLAC", AudioFormat.OGG: "OGG", AudioFormat.OPUS: "OGG"}
#: FFmpeg audio encoders used below. A Literal (every value is one of PyAV's audio codec names) so
#: ``add_stream`` is typed as returning an ``AudioStream``.
_AvAudioCodec = Literal["aac", "libmp3lame"]
#: FFmpeg container and codec for the compressed formats libsndfile cannot write.
_AV_OUTPUT: dict[AudioFormat, tuple[str, _AvAudioCodec]] = {
    AudioFormat.M4A: ("ipod", "aac"),
    AudioFormat.AAC: ("adts", "aac"),
    AudioFormat.MP3: ("mp3", "libmp3lame"),
}
#: Opus only runs at these rates; encode at the nearest one at or above the request.
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    samples: Samples  # mono float32
    sample_rate: int
    channels: int  # channels in the input, restored on output

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def _invalid(message: str) -> DubbingError:
    return DubbingError(ErrorCode.INVALID_AUDIO, message, stage=Stage.DECODE, retryable=False)


def payload_bytes(audio: str | bytes) -> bytes:
    """The fragment's audio bytes: a binary attachment as is, a string as strict base64."""
    if isinstance(audio, bytes):
        return audio
    try:
        return base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid(f"audio is not valid base64: {exc}") from exc


def _to_mono(frames: np.ndarray) -> Samples:
    if frames.ndim == 2:
        frames = frames.mean(axis=1)
    return np.ascontiguousarray(frames, dtype=np.float32)


def decode(data: bytes, fmt: AudioFormat, *, sample_rate: int, channels: int) -> DecodedAudio:
    """Decode one fragment. ``sample_rate``/``channels`` describe raw PCM; containers carry their own."""
    if not data:
        raise _invalid("audio is empty")
    if fmt is AudioFormat.PCM_S16LE:
        frame_bytes = 2 * channels
        if len(data) % frame_bytes:
            raise _invalid(f"pcm_s16le payload of {len(data)} bytes is not a whole number of {channels}-channel frames")
        pcm = np.frombuffer(data, dtype="<i2").reshape(-1, channels).astype(np.float32) / 32768.0
        return DecodedAudio(_to_mono(pcm), sample_rate, channels)
    if fmt in _SOUNDFILE_FORMATS:
        try:
            frames, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            raise _invalid(f"cannot decode {fmt.value} audio: {exc}") from exc
        return _checked(DecodedAudio(_to_mono(frames), int(rate), frames.shape[1]))
    return _checked(_decode_with_ffmpeg(data, fmt))


def _decode_with_ffmpeg(data: bytes, fmt: AudioFormat) -> DecodedAudio:
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = next(iter(container.streams.audio), None)
            if stream is None:
                raise _invalid(f"{fmt.value} payload has no audio stream")
            channels = stream.codec_context.channels or 1
            rate = stream.codec_context.sample_rate
            # The container's own duration excludes the codec's last-frame padding (AAC decodes in
            # 1024-sample frames); trimming to it keeps durations honest.
            declared = int(stream.duration * stream.time_base * rate) if stream.duration and stream.time_base else None
            # Resample to packed float mono as we decode: one pass, any input layout.
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks = [
                out.to_ndarray().reshape(-1) for frame in container.decode(stream) for out in resampler.resample(frame)
            ]
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except DubbingError:
        raise
    except (av.FFmpegError, ValueError, StopIteration) as exc:
        raise _invalid(f"cannot decode {fmt.value} audio: {exc}") from exc
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if declared and 0 < declared < len(samples):
        samples = samples[:declared]
    return DecodedAudio(samples, int(rate), int(channels))


def _checked(audio: DecodedAudio) -> DecodedAudio:
    if audio.samples.size == 0:
        raise _invalid("audio decodes to zero samples")
    # Float WAV/FLAC can carry NaN or infinities; past this point they would spread through
    # resampling and fail a whole ASR batch shared with other streams.
    if not np.isfinite(audio.samples).all():
        raise _invalid("audio contains NaN or infinite samples")
    return audio


def resample(samples: Samples, from_rate: int, to_rate: int) -> Samples:
    if from_rate == to_rate or samples.size == 0:
        return samples
    return np.asarray(soxr.resample(samples, from_rate, to_rate, quality="HQ"), dtype=np.float32)


def encode(samples: Samples, fmt: AudioFormat, *, sample_rate: int, channels: int = 1) -> bytes:
    """Encode mono float32 ``samples`` (already at ``sample_rate``) as ``fmt`` with ``channels``."""
    clipped = np.clip(samples, -1.0, 1.0)
    multi = np.repeat(clipped[:, None], channels, axis=1) if channels > 1 else clipped[:, None]
    if fmt is AudioFormat.PCM_S16LE:
        return (multi * 32767.0).round().astype("<i2").tobytes()
    buffer = io.BytesIO()
    if fmt in _SOUNDFILE_FORMATS:
        subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "OPUS"}[_SOUNDFILE_FORMATS[fmt]]
        if subtype == "OPUS" and sample_rate not in _OPUS_RATES:
            rate = next((r for r in _OPUS_RATES if r >= sample_rate), 48000)
            multi = np.repeat(resample(clipped, sample_rate, rate)[:, None], channels, axis=1)
            sample_rate = rate
        sf.write(buffer, multi, sample_rate, format=_SOUNDFILE_FORMATS[fmt], subtype=subtype)
        return buffer.getvalue()
    container_name, codec = _AV_OUTPUT[fmt]
    layout = "mono" if channels == 1 else "stereo"
    with av.open(buffer, mode="w", format=container_name) as container:
        stream = container.add_stream(codec, rate=sample_rate, layout=layout)
        # Packed float: one row of interleaved samples; PyAV converts to the codec's layout.
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(multi.reshape(1, -1), dtype=np.float32), format="flt", layout=layout
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
