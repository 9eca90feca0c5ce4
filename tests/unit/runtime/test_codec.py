import base64
from pathlib import Path

import numpy as np
import pytest

from livedub.runtime.audio.codec import decode, encode, payload_bytes, resample
from livedub.runtime.errors import DubbingError, ErrorCode, Stage
from livedub.runtime.protocol.events import AudioFormat

FLEURS = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "fleurs"


def tone(seconds=1.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


@pytest.mark.parametrize("fmt", list(AudioFormat))
@pytest.mark.parametrize("channels", [1, 2])
def test_round_trip_every_format(fmt, channels):
    data = encode(tone(), fmt, sample_rate=16000, channels=channels)
    audio = decode(data, fmt, sample_rate=16000, channels=channels)
    assert audio.channels == channels
    # Raw ADTS AAC has no container timing to mark the encoder's priming (~1024 samples); M4A has an
    # edit list for it, and the others are sample exact.
    assert audio.duration_s == pytest.approx(1.0, abs=0.13 if fmt is AudioFormat.AAC else 0.03)
    assert np.sqrt(np.mean(audio.samples**2)) > 0.1


def test_pcm_is_bit_exact():
    x = tone()
    audio = decode(
        encode(x, AudioFormat.PCM_S16LE, sample_rate=16000), AudioFormat.PCM_S16LE, sample_rate=16000, channels=1
    )
    assert np.max(np.abs(audio.samples - x)) < 1 / 16000


def test_real_fleurs_opus_decodes():
    data = (FLEURS / "fleurs-en-000.ogg").read_bytes()
    audio = decode(data, AudioFormat.OGG, sample_rate=16000, channels=1)
    assert audio.sample_rate == 16000 and audio.duration_s > 2


@pytest.mark.parametrize(
    ("data", "fmt", "channels"),
    [
        (b"", AudioFormat.PCM_S16LE, 1),
        (b"\x00\x01\x02", AudioFormat.PCM_S16LE, 1),
        (b"\x00" * 6, AudioFormat.PCM_S16LE, 4),
        (b"not a wav file at all", AudioFormat.WAV, 1),
        (b"garbage" * 50, AudioFormat.M4A, 1),
        (b"OggS" + b"\x00" * 40, AudioFormat.OGG, 1),
    ],
)
def test_broken_audio_is_invalid_audio_at_decode(data, fmt, channels):
    with pytest.raises(DubbingError) as info:
        decode(data, fmt, sample_rate=16000, channels=channels)
    assert info.value.code == ErrorCode.INVALID_AUDIO and info.value.stage == Stage.DECODE and not info.value.retryable


def test_base64_is_strict():
    assert payload_bytes(base64.b64encode(b"\x01\x02").decode()) == b"\x01\x02"
    assert payload_bytes(b"raw") == b"raw"
    with pytest.raises(DubbingError) as info:
        payload_bytes("not base64!!")
    assert info.value.code == ErrorCode.INVALID_AUDIO


def test_resample_keeps_duration():
    assert len(resample(tone(1.0, 24000), 24000, 16000)) == 16000


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_float_audio_is_refused_at_decode(bad):
    import io

    import soundfile as sf

    samples = tone()
    samples[100] = bad
    buffer = io.BytesIO()
    sf.write(buffer, samples, 16000, format="WAV", subtype="FLOAT")
    with pytest.raises(DubbingError) as refused:
        decode(buffer.getvalue(), AudioFormat.WAV, sample_rate=16000, channels=1)
    assert (refused.value.code, refused.value.stage) == (ErrorCode.INVALID_AUDIO, Stage.DECODE)


@pytest.mark.parametrize("fmt", [AudioFormat.M4A, AudioFormat.MP3, AudioFormat.WAV])
def test_compressed_output_stays_in_sync_with_the_input(fmt):
    """A click at 250 ms comes back at 250 ms: the AAC encoder's priming is marked in the M4A edit list."""
    x = np.zeros(16000, np.float32)
    x[4000:4400] = 0.5 * np.sin(2 * np.pi * 500 * np.arange(400) / 16000)
    back = decode(encode(x, fmt, sample_rate=16000), fmt, sample_rate=16000, channels=1).samples
    assert len(back) == 16000
    assert abs(int(np.argmax(np.abs(back) > 0.1)) - 4000) <= 16  # 1 ms


# --- multichannel output (issue 11, item 2) ------------------------------------------------------


def _layout_of(data: bytes) -> tuple[str, int]:
    import io

    import av

    with av.open(io.BytesIO(data)) as container:
        context = container.streams.audio[0].codec_context
        return context.layout.name, context.channels


@pytest.mark.parametrize("fmt", list(AudioFormat))
@pytest.mark.parametrize("channels", range(1, 9))
def test_output_has_the_fragments_channels_and_duration(fmt, channels):
    """Before: any count above 1 was written as interleaved stereo, so 6 channels came back 3x too long."""
    from livedub.runtime.audio.codec import encode_audio, output_channels

    rate = 48000
    n = 3 * rate + 7  # not a multiple of any codec frame: exactness is not a coincidence
    x = np.zeros(n, np.float32)
    x[rate : rate + 480] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(480) / rate)  # a 10 ms tone burst at 1 s
    out = encode_audio(x, fmt, sample_rate=rate, channels=channels)
    sent = 2 if fmt is AudioFormat.MP3 and channels > 2 else channels  # MP3 carries at most 2: documented
    assert out.channels == output_channels(fmt, channels) == sent
    assert out.sample_rate == rate
    back = decode(out.data, fmt, sample_rate=rate, channels=sent)
    assert back.channels == sent and back.sample_rate == rate
    if fmt is AudioFormat.AAC:
        # Raw ADTS has no container timing: it decodes to whole 1024-sample frames, and its first
        # frame is the encoder's priming (we start the encoder 1024 samples in, to stay aligned).
        assert len(back.samples) == -(-n // 1024) * 1024
    elif fmt is AudioFormat.MP3:
        # FFmpeg's gapless MP3 decoding keeps at least 47 samples of a nearly empty last frame
        # (measured: exact unless the length is within 47 samples past a 1152-sample frame).
        assert n <= len(back.samples) <= n + 47
    else:
        assert len(back.samples) == n
    onset = int(np.argmax(np.abs(back.samples) > 0.1))
    assert abs(onset - rate) <= 48, (fmt, channels, onset)  # in sync within 1 ms
    if fmt not in (AudioFormat.PCM_S16LE,):
        name, decoded_channels = _layout_of(out.data)
        assert decoded_channels == sent
        # FFmpeg's standard layouts: AAC's channel configurations (6.1 has none), and the mask of
        # WAVE_FORMAT_EXTENSIBLE, which WAV uses above two channels only.
        if (fmt in (AudioFormat.M4A, AudioFormat.AAC) and sent != 7) or (fmt is AudioFormat.WAV and sent > 2):
            assert name == {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}[sent]


def test_output_rate_is_what_the_codec_carries():
    from livedub.runtime.audio.codec import encode_audio

    x = tone(1.0, 192000)
    assert encode_audio(x, AudioFormat.MP3, sample_rate=192000).sample_rate == 48000
    assert encode_audio(x, AudioFormat.M4A, sample_rate=192000).sample_rate == 96000
    assert encode_audio(x, AudioFormat.OGG, sample_rate=44100).sample_rate == 48000
    assert encode_audio(x, AudioFormat.FLAC, sample_rate=192000).sample_rate == 192000


# --- raw ADTS length (issue 11, item 6) ----------------------------------------------------------


def _worker_adts(audio: np.ndarray, rate: int = 16000) -> tuple[bytes, int]:
    """Raw ADTS as a media worker makes it with FFmpeg (PyAV directly, not our encoder); returns the
    bytes and the number of AAC frames in them."""
    import io
    from fractions import Fraction

    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="adts") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(audio.astype(np.float32)[None, :], format="flt", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        packets = [*stream.encode(frame), *stream.encode(None)]
        for packet in packets:
            container.mux(packet)
    return buffer.getvalue(), len(packets)


@pytest.mark.parametrize("content", ["mostly-silent", "speech"])
def test_raw_adts_decodes_to_every_frame_it_carries(content):
    """FFmpeg's ADTS duration is a bitrate estimate: a mostly silent 6.016 s segment was cut to 3.584 s."""
    n = 94 * 1024 - 1024  # the encoder adds one frame of priming: 94 frames = 6.016 s at 16 kHz
    if content == "speech":
        from support.data import FLEURS, fleurs

        if not FLEURS.is_dir():
            pytest.skip("shared FLEURS data not found")
        audio = fleurs("fleurs-en-005")[0][:n]
    else:
        audio = np.zeros(n, np.float32)
        audio[:1600] = tone(0.1)  # 100 ms of tone, then silence: tiny frames, a low bitrate estimate
    data, frames = _worker_adts(audio)
    assert frames == 94
    decoded = decode(data, AudioFormat.AAC, sample_rate=16000, channels=1, max_duration_s=30)
    assert len(decoded.samples) == frames * 1024  # 6.016 s, to the sample


def test_adts_through_our_encoder_keeps_the_segment_length_and_alignment():
    """A 94-frame ADTS segment in, a 94-frame ADTS segment out, with the onset where it was."""
    from livedub.runtime.audio.codec import encode_audio

    n = 94 * 1024
    x = np.zeros(n, np.float32)
    x[32000:32400] = 0.5 * np.sin(2 * np.pi * 500 * np.arange(400) / 16000)
    data = encode_audio(x, AudioFormat.AAC, sample_rate=16000).data
    back = decode(data, AudioFormat.AAC, sample_rate=16000, channels=1)
    assert len(back.samples) == n
    assert abs(int(np.argmax(np.abs(back.samples) > 0.1)) - 32000) <= 16
