"""Video files for ``livedub dub``: read the audio track out, mux the dub back in beside the untouched picture.

The picture is remuxed, never decoded: its packets go from the input container to the output one as
they are, so a dub costs no picture quality and no encoding time, and the output's video stream is
byte for byte the input's. Only audio is encoded, with the codec the output container expects (AAC
in MP4/MOV, Opus in Matroska/WebM: what players accept in each), at the original track's rate and
channel count so the dub drops in where the original was. Packets of all tracks are interleaved by
time, the way FFmpeg's own remuxing writes them, so players need not seek back and forth.

What a container cannot hold is refused before any dubbing starts, with one line naming a container
that can: FFmpeg itself is asked, by writing the output's header into memory with the input's streams
(a table of codecs per container would drift from the FFmpeg actually installed).
"""

from __future__ import annotations

import heapq
import io
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np

from livedub.runtime.audio.codec import resample
from livedub.runtime.engines.base import Samples

_AudioCodec = Literal["aac", "libopus"]
#: Output suffix -> (FFmpeg muxer, audio encoder for the dub). M4A is MP4 without a picture: an
#: audio file soundfile cannot write, so it goes through the same muxing.
CONTAINERS: dict[str, tuple[str, _AudioCodec]] = {
    ".m4a": ("ipod", "aac"),
    ".mp4": ("mp4", "aac"),
    ".m4v": ("mp4", "aac"),
    ".mov": ("mov", "aac"),
    ".mkv": ("matroska", "libopus"),
    ".webm": ("webm", "libopus"),
}
#: WebM is checked by name to give the clearest message; other muxers are asked (``_accepts``).
_WEBM_VIDEO = {"vp8", "vp9", "av1"}
#: Opus encodes at 48 kHz only (it accepts lower rates by resampling internally; we do it once here).
_OPUS_RATE = 48_000


class MediaError(Exception):
    """A file that cannot be dubbed into the requested container; the message is for the user."""


@dataclass(frozen=True, slots=True)
class MediaPlan:
    """What will be written: the output's muxer, the dub's codec and format, and what the original keeps."""

    muxer: str
    audio_codec: _AudioCodec
    audio_rate: int
    audio_channels: int
    #: Seconds from the container's zero to the original audio's first sample: the dub starts there too.
    audio_start_s: float
    video_codec: str | None
    #: The original track is copied as it is when the container holds its codec, else re-encoded.
    copy_original_audio: bool


#: Inputs whose audio is read as a track from the file (they may carry pictures), not as bytes.
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".ts", ".flv", ".avi"}


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def needs_mux(path: Path) -> bool:
    """Whether an output is written by ``mux`` (a container) rather than as a plain sound file."""
    return path.suffix.lower() in CONTAINERS


def plan(input_path: Path, output_path: Path) -> MediaPlan:
    """Check that ``input_path``'s streams fit ``output_path``'s container, before any work is done."""
    suffix = output_path.suffix.lower()
    if suffix not in CONTAINERS:
        raise MediaError(
            f"cannot write {suffix or 'a file without suffix'}: use .wav, or one of {', '.join(CONTAINERS)}"
        )
    muxer, audio_codec = CONTAINERS[suffix]
    try:
        with av.open(str(input_path)) as container:
            if not container.streams.audio:
                raise MediaError(f"{input_path} has no audio track to dub")
            audio = container.streams.audio[0]
            video = container.streams.video[0] if container.streams.video else None
            rate = audio.codec_context.sample_rate
            channels = min(audio.codec_context.channels or 1, 2)  # a dub is speech: stereo at most
            start = float(audio.start_time * audio.time_base) if audio.start_time and audio.time_base else 0.0
            video_codec = video.codec_context.name if video is not None else None
    except av.FFmpegError as exc:
        raise MediaError(f"cannot read {input_path}: {exc}") from exc
    if muxer == "webm" and video_codec is not None and video_codec not in _WEBM_VIDEO:
        raise MediaError(
            f"WebM holds only VP8/VP9/AV1 video and {input_path.name} is {video_codec}: write .mkv instead"
        )
    if video_codec is not None and not _accepts(input_path, muxer, "video"):
        raise MediaError(f"a {muxer} file cannot hold {video_codec} video: write .mkv instead")
    return MediaPlan(
        muxer=muxer,
        audio_codec=audio_codec,
        audio_rate=_OPUS_RATE if audio_codec == "libopus" else rate,
        audio_channels=channels,
        audio_start_s=start,
        video_codec=video_codec,
        copy_original_audio=_accepts(input_path, muxer, "audio"),
    )


def _accepts(input_path: Path, muxer: str, kind: Literal["video", "audio"]) -> bool:
    """Whether ``muxer`` takes the input's first ``kind`` stream as it is (its header, written to memory)."""
    with av.open(str(input_path)) as source:
        streams = source.streams.video if kind == "video" else source.streams.audio
        try:
            with av.open(io.BytesIO(), mode="w", format=muxer) as probe:
                probe.add_stream_from_template(streams[0])
                probe.start_encoding()
        except (av.FFmpegError, ValueError):
            return False
    return True


def read_audio(path: Path, rate: int) -> Samples:
    """The first audio track of any file FFmpeg reads, as mono float32 at ``rate``."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks = [out.to_ndarray().reshape(-1) for f in container.decode(stream) for out in resampler.resample(f)]
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except (av.FFmpegError, IndexError) as exc:
        raise MediaError(f"cannot read the audio of {path}: {exc}") from exc
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def _encoded(
    output: av.container.OutputContainer, samples: Samples, rate: int, media: MediaPlan, *, language: str | None
) -> list[av.Packet[Any]]:
    """Encode mono ``samples`` at ``rate`` as a new audio track of ``output``; its packets, in order."""
    layout = "stereo" if media.audio_channels == 2 else "mono"
    stream = output.add_stream(media.audio_codec, rate=media.audio_rate, layout=layout)
    if language:
        stream.metadata["language"] = language
    mono = np.clip(resample(samples, rate, media.audio_rate), -1.0, 1.0)
    interleaved = np.repeat(mono[:, None], media.audio_channels, axis=1).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(interleaved, np.float32), format="flt", layout=layout)
    frame.sample_rate = media.audio_rate
    # A timestamp lets the encoder mark its priming samples with a negative start, which MP4's edit
    # list (and Matroska's codec delay) hide from players; starting at the original's first sample
    # keeps the dub in sync with the picture.
    frame.pts = round(media.audio_start_s * media.audio_rate)
    frame.time_base = Fraction(1, media.audio_rate)
    return [*stream.encode(frame), *stream.encode(None)]


def _when(packet: av.Packet[Any]) -> float:
    stamp = packet.dts if packet.dts is not None else packet.pts
    return float((stamp or 0) * packet.time_base) if packet.time_base else 0.0


def mux(
    input_path: Path,
    output_path: Path,
    dubbed: Samples,
    rate: int,
    media: MediaPlan,
    *,
    keep_original: bool = False,
    language: str | None = None,
) -> None:
    """Write ``output_path``: the input's video copied, ``dubbed`` (mono at ``rate``) as the first audio track.

    With ``keep_original`` the input's audio follows as a second track (copied when the container
    holds its codec), so a viewer can switch back to the original voice.
    """
    output_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with av.open(str(input_path)) as source, av.open(str(output_path), mode="w", format=media.muxer) as output:
            # Input stream index -> the output stream its packets are copied into, untouched.
            by_source: dict[int, av.stream.Stream] = {}
            if source.streams.video:
                by_source[source.streams.video[0].index] = output.add_stream_from_template(source.streams.video[0])
            tracks: list[list[av.Packet[Any]]] = [_encoded(output, dubbed, rate, media, language=language)]
            original = source.streams.audio[0]
            if keep_original and media.copy_original_audio:
                by_source[original.index] = output.add_stream_from_template(original)
            elif keep_original:
                tracks.append(_encoded(output, read_audio(input_path, rate), rate, media, language=None))
            copied = [stream for stream in source.streams if stream.index in by_source]
            for packet in heapq.merge(_copied(source, copied, by_source), *tracks, key=_when):
                output.mux(packet)
    except av.FFmpegError as exc:
        output_path.unlink(missing_ok=True)
        raise MediaError(f"cannot write {output_path}: {exc}") from exc


def _copied(
    source: av.container.InputContainer, streams: list[av.stream.Stream], by_source: dict[int, av.stream.Stream]
) -> Iterator[av.Packet[Any]]:
    """The input's packets of ``streams``, relabelled for the output stream each is copied into."""
    if not streams:
        return
    for packet in source.demux(*streams):
        target = by_source.get(packet.stream.index)
        # The demuxer's end-of-stream marker carries no data. (A missing dts is no such marker:
        # Matroska stores none for the first B-frame-delayed pictures, and the muxer copes.)
        if target is None or packet.size == 0:
            continue
        packet.stream = target
        yield packet
