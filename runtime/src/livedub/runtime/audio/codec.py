"""Audio in and out of the wire: decode any accepted format to mono float32, encode back.

Raw PCM is parsed with numpy; WAV, FLAC and Ogg are read through libsndfile (``soundfile``); M4A/AAC
and MP3 through FFmpeg (``av``, :mod:`.ffmpeg`), the same libraries a media worker uses, so what it
sends is what we read. All failures become ``INVALID_AUDIO`` at stage ``decode``: a broken fragment
never reaches an engine. Resampling uses libsoxr (``soxr``), a band-limited resampler that does not
alias speech.

Memory is bounded while decoding, not after: with ``max_duration_s`` a container's declared length is
checked before anything is decoded, and decoding runs block by block, mixing to mono as it goes and
stopping as soon as the limit is passed. A 476 kB FLAC declaring 5 min of 192 kHz x 8 channels used
to be decoded whole (1.8 GB of float32) before the limit was checked (issue 11, item 5).

On output the dub (mono speech) is written on every channel of the fragment's own channel count
(a mix over the original, pipeline/mix.py, keeps the input's channels: ``keep_channels`` on decode),
with FFmpeg's standard layout for it (:data:`.ffmpeg.LAYOUTS`); MP3 carries at most two channels, so
more are sent as stereo and :class:`EncodedAudio` reports what was actually sent.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np
import soundfile as sf
import soxr

from livedub.runtime.audio import ffmpeg
from livedub.runtime.engines.base import Samples
from livedub.runtime.errors import DubbingError, ErrorCode, Stage
from livedub.runtime.protocol.events import AudioFormat

_SOUNDFILE_FORMATS = {AudioFormat.WAV: "WAV", AudioFormat.FLAC: "FLAC", AudioFormat.OGG: "OGG", AudioFormat.OPUS: "OGG"}
#: Formats written by FFmpeg: libsndfile has no AAC or MP3 encoder, and its WAV header carries no
#: channel mask, so WAV goes through FFmpeg too (its muxer writes WAVE_FORMAT_EXTENSIBLE above 2).
_FFMPEG_OUTPUT = {AudioFormat.M4A: "m4a", AudioFormat.AAC: "aac", AudioFormat.MP3: "mp3", AudioFormat.WAV: "wav"}
#: Opus only runs at these rates; encode at the nearest one at or above the request.
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
#: Frames libsndfile decodes at a time: 64 Ki frames x 8 channels of float32 is 2 MiB.
_BLOCK_FRAMES = 1 << 16
#: libsndfile reports an unknown length (FLAC written to a pipe) as SF_COUNT_MAX (2**63 - 1).
_UNKNOWN_FRAMES = 1 << 62


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    samples: Samples  # mono float32
    sample_rate: int
    channels: int  # channels in the input, restored on output
    #: The input's own channels (frames x channels), kept only when asked (a mix lays the dub over them).
    frames: Samples | None = None

    @property
    def original(self) -> Samples:
        """The input as it came: frames x channels where kept, else the mono samples."""
        return self.frames if self.frames is not None else self.samples

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True, slots=True)
class EncodedAudio:
    """Encoded bytes and what they really carry (a format may force another rate or fewer channels)."""

    data: bytes
    sample_rate: int
    channels: int


def _invalid(message: str) -> DubbingError:
    return DubbingError(ErrorCode.INVALID_AUDIO, message, stage=Stage.DECODE, retryable=False)


def _too_long(limit_s: float | None) -> ffmpeg.TooLong:
    def error(duration_s: float) -> Exception:
        return _invalid(
            f"fragment lasts at least {duration_s:.2f}s, over the {limit_s:g}s limit (FRAGMENT_MAX_DURATION_MS)"
        )

    return error


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
        frames = frames.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(frames, dtype=np.float32)


def decode(
    data: bytes,
    fmt: AudioFormat,
    *,
    sample_rate: int,
    channels: int,
    max_duration_s: float | None = None,
    keep_channels: bool = False,
) -> DecodedAudio:
    """Decode one fragment. ``sample_rate``/``channels`` describe raw PCM; containers carry their own.

    ``max_duration_s`` refuses longer audio with ``INVALID_AUDIO`` before decoding past it.
    ``keep_channels`` keeps a multichannel input's frames as well as its mono mix-down.
    """
    if not data:
        raise _invalid("audio is empty")
    too_long = _too_long(max_duration_s)
    if fmt is AudioFormat.PCM_S16LE:
        frame_bytes = 2 * channels
        if len(data) % frame_bytes:
            raise _invalid(f"pcm_s16le payload of {len(data)} bytes is not a whole number of {channels}-channel frames")
        if max_duration_s is not None and len(data) // frame_bytes > max_duration_s * sample_rate:
            raise too_long(len(data) / frame_bytes / sample_rate)
        pcm = np.frombuffer(data, dtype="<i2").reshape(-1, channels)
        mono = pcm.mean(axis=1, dtype=np.float32) if channels > 1 else pcm[:, 0].astype(np.float32)
        kept = pcm.astype(np.float32) / np.float32(32768.0) if keep_channels and channels > 1 else None
        return DecodedAudio(mono / np.float32(32768.0), sample_rate, channels, kept)
    if fmt in _SOUNDFILE_FORMATS:
        try:
            decoded = _decode_with_soundfile(data, max_duration_s, too_long, keep_channels)
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            raise _invalid(f"cannot decode {fmt.value} audio: {exc}") from exc
        if decoded is not None:
            return _checked(decoded)
    try:
        samples, rate, channels = ffmpeg.decode(
            data, max_duration_s=max_duration_s, too_long=too_long, keep_channels=keep_channels
        )
    except (av.FFmpegError, ValueError, StopIteration) as exc:
        raise _invalid(f"cannot decode {fmt.value} audio: {exc}") from exc
    if samples.ndim == 2:
        return _checked(DecodedAudio(_to_mono(samples), rate, channels, samples))
    return _checked(DecodedAudio(samples, rate, channels))


def _decode_with_soundfile(
    data: bytes, max_duration_s: float | None, too_long: ffmpeg.TooLong, keep_channels: bool = False
) -> DecodedAudio | None:
    """Decode through libsndfile; None for a file of unknown length, which FFmpeg decodes instead
    (libsndfile's reads seek after each block, and that fails without a length)."""
    with sf.SoundFile(io.BytesIO(data)) as file:
        if file.frames >= _UNKNOWN_FRAMES:
            return None
        rate, channels = int(file.samplerate), int(file.channels)
        limit = None if max_duration_s is None else int(max_duration_s * rate)
        # The header's frame count first (FLAC's STREAMINFO, WAV's data size): a bomb is refused
        # before one sample is decoded. Headers can lie, so the blocks are counted as well.
        if limit is not None and file.frames > limit:
            raise too_long(file.frames / rate)
        # One buffer of the declared length, filled block by block: peak memory is the mono result
        # plus one block, not a list of blocks and their concatenation (measured 52 -> 26 MiB for
        # 30 s at 192 kHz x 8 channels).
        samples = np.empty(file.frames, dtype=np.float32)
        kept = np.empty((file.frames, channels), dtype=np.float32) if keep_channels and channels > 1 else None
        total = 0
        for block in _blocks(file):
            if limit is not None and total + len(block) > limit:
                raise too_long((total + len(block)) / rate)
            if total + len(block) > len(samples):  # more than the header said: grow
                samples = np.resize(samples, max(2 * len(samples), total + len(block)))
                if kept is not None:
                    kept = np.resize(kept, (len(samples), channels))
            samples[total : total + len(block)] = _to_mono(block)
            if kept is not None:
                kept[total : total + len(block)] = block
            total += len(block)
    return DecodedAudio(samples[:total], rate, channels, None if kept is None else kept[:total])


def _blocks(file: sf.SoundFile) -> Iterator[np.ndarray]:
    while True:
        block = file.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
        if not len(block):
            return
        yield block


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


def output_channels(fmt: AudioFormat, channels: int) -> int:
    """Channels ``fmt`` can carry for a fragment of ``channels`` (MP3: at most 2)."""
    return min(channels, ffmpeg.MAX_CHANNELS.get(_FFMPEG_OUTPUT.get(fmt, ""), channels))


def encode_audio(samples: Samples, fmt: AudioFormat, *, sample_rate: int, channels: int = 1) -> EncodedAudio:
    """Encode mono float32 ``samples`` (at ``sample_rate``) on ``channels`` channels of ``fmt``.

    ``samples`` may instead be frames x channels (a mix over the original's own channels); where the
    format carries fewer channels they are mixed down to mono and written on every one.

    The rate or channel count may change where the format cannot carry them (Opus runs at 8-48 kHz,
    MP3 at most 48 kHz and 2 channels, AAC at most 96 kHz); the result says what was written.
    """
    channels = output_channels(fmt, channels)
    rate = sample_rate
    if fmt in (AudioFormat.OGG, AudioFormat.OPUS) and rate not in _OPUS_RATES:
        rate = next((r for r in _OPUS_RATES if r >= rate), 48000)
    elif fmt in _FFMPEG_OUTPUT:
        rate = ffmpeg.supported_rate(_FFMPEG_OUTPUT[fmt], rate)
    if samples.ndim == 2 and samples.shape[1] != channels:
        samples = _to_mono(samples)  # a mix the format cannot carry on its channels: mixed down like the input
    out = np.clip(resample(samples, sample_rate, rate), -1.0, 1.0)
    frames = out if out.ndim == 2 else np.repeat(out[:, None], channels, axis=1)
    if fmt is AudioFormat.PCM_S16LE:
        data = (frames * 32767.0).round().astype("<i2").tobytes()
    elif fmt in _FFMPEG_OUTPUT:
        data = ffmpeg.encode(frames, _FFMPEG_OUTPUT[fmt], rate)
    else:
        buffer = io.BytesIO()
        subtype = "OPUS" if _SOUNDFILE_FORMATS[fmt] == "OGG" else "PCM_16"
        sf.write(buffer, frames, rate, format=_SOUNDFILE_FORMATS[fmt], subtype=subtype)
        data = buffer.getvalue()
    return EncodedAudio(data, rate, channels)


def encode(samples: Samples, fmt: AudioFormat, *, sample_rate: int, channels: int = 1) -> bytes:
    """:func:`encode_audio`'s bytes alone."""
    return encode_audio(samples, fmt, sample_rate=sample_rate, channels=channels).data
