"""Small real video files for the dub tests: FLEURS speech plus a synthetic picture, built with PyAV.

The picture is a moving gradient at 64x48, 10 fps: enough frames with motion that an encoder emits
real key and inter frames (so a re-encode would change the packets), tiny enough to build in well
under a second. Audio is the real speech, encoded with the container's usual codec.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

#: container suffix -> (video encoder, audio encoder, audio rate): the pairs each format allows.
CODECS: dict[str, tuple[Literal["libx264", "mpeg4", "libvpx"], Literal["aac", "libopus"], int]] = {
    ".mp4": ("libx264", "aac", 16000),
    ".mov": ("mpeg4", "aac", 44100),
    ".mkv": ("libx264", "libopus", 48000),
    ".webm": ("libvpx", "libopus", 48000),
}
FPS = 10


def make_video(path: Path, speech: np.ndarray, rate: int, *, stereo: bool = False) -> Path:
    """Write ``speech`` (mono float32 at ``rate``) with a synthetic picture of the same length to ``path``."""
    video_codec, audio_codec, audio_rate = CODECS[path.suffix]
    from livedub.runtime.audio.codec import resample

    samples = resample(speech, rate, audio_rate)
    layout = "stereo" if stereo else "mono"
    with av.open(str(path), mode="w") as container:
        video = container.add_stream(video_codec, rate=FPS)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream(audio_codec, rate=audio_rate, layout=layout)
        frames = int(len(samples) / audio_rate * FPS) + 1
        y, x = np.mgrid[0:48, 0:64]
        for index in range(frames):
            picture = ((x + y + 3 * index) % 256).astype(np.uint8)
            rgb = np.stack([picture, np.roll(picture, index, axis=1), 255 - picture], axis=-1)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        channels = np.repeat(samples[None, :], 2 if stereo else 1, axis=0).T.reshape(1, -1)
        sound = av.AudioFrame.from_ndarray(np.ascontiguousarray(channels, np.float32), format="flt", layout=layout)
        sound.sample_rate, sound.pts, sound.time_base = audio_rate, 0, Fraction(1, audio_rate)
        container.mux(audio.encode(sound))
        container.mux(audio.encode(None))
    return path


def video_packets(path: Path) -> list[bytes]:
    """Every video packet's bytes, in file order."""
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


def audio_tracks(path: Path) -> list[tuple[str, int, int]]:
    """Per audio track: (codec, decoded samples per channel, sample rate) — the length a player hears."""
    tracks = []
    with av.open(str(path)) as container:
        for stream in container.streams.audio:
            tracks.append((stream.codec_context.name, 0, stream.codec_context.sample_rate))
    for index, (codec, _, rate) in enumerate(tracks):
        with av.open(str(path)) as container:
            stream = container.streams.audio[index]
            count = sum(frame.samples for frame in container.decode(stream))
        tracks[index] = (codec, count, rate)
    return tracks
