"""Video remux for ``livedub dub``: the picture copied byte for byte, the dub as long as the original.

Real containers and codecs (FFmpeg through PyAV) and real FLEURS speech; the "dub" here is the
speech turned upside down, since what is under test is the muxing, not the engines (the CLI test
runs those end to end).
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from livedub.runtime.client import media, summary
from support.data import fleurs
from support.video import CODECS, audio_tracks, make_video, video_packets


def _frame_size(path: Path, track: int = 0) -> int:
    with av.open(str(path)) as container:
        return container.streams.audio[track].codec_context.frame_size or 1024


@pytest.fixture(scope="module")
def speech(shared_data) -> tuple[np.ndarray, int]:
    return fleurs("fleurs-en-003")


@pytest.mark.parametrize("suffix", list(CODECS))
def test_dub_replaces_the_audio_and_copies_the_picture(tmp_path, speech, suffix):
    samples, rate = speech
    source = make_video(tmp_path / f"talk{suffix}", samples, rate, stereo=suffix == ".mov")
    out = tmp_path / f"talk.es{suffix}"
    plan = media.plan(source, out)
    media.mux(source, out, -samples, rate, plan, language="spa")
    assert video_packets(out) == video_packets(source)  # copied, not re-encoded
    [(_, original_samples, original_rate)] = audio_tracks(source)
    [(codec, dubbed_samples, dubbed_rate)] = audio_tracks(out)
    assert codec == ("aac" if suffix in (".mp4", ".mov") else "opus")
    # The dub is as long as the original track, within one codec frame.
    assert abs(dubbed_samples / dubbed_rate - original_samples / original_rate) <= _frame_size(out) / dubbed_rate
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        assert stream.metadata.get("language") == "spa"
        assert stream.codec_context.channels == (2 if suffix == ".mov" else 1)


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_keep_original_audio_copies_it_as_a_second_track(tmp_path, speech, suffix):
    samples, rate = speech
    source = make_video(tmp_path / f"talk{suffix}", samples, rate)
    out = tmp_path / f"talk.es{suffix}"
    media.mux(source, out, -samples, rate, media.plan(source, out), keep_original=True)
    tracks = audio_tracks(out)
    assert len(tracks) == 2 and tracks[1] == audio_tracks(source)[0]
    with av.open(str(source)) as a, av.open(str(out)) as b:
        original = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
        kept = [bytes(p) for p in b.demux(b.streams.audio[1]) if p.size]
    assert kept == original


def test_an_original_the_container_cannot_hold_is_re_encoded(tmp_path, speech):
    samples, rate = speech
    source = make_video(tmp_path / "talk.mkv", samples, rate)
    # MOV takes the H.264 picture but not the Opus track: the original is re-encoded as AAC beside it.
    out = tmp_path / "talk.es.mov"
    plan = media.plan(source, out)
    assert not plan.copy_original_audio
    media.mux(source, out, -samples, rate, plan, keep_original=True)
    assert [codec for codec, _, _ in audio_tracks(out)] == ["aac", "aac"]
    assert video_packets(out) == video_packets(source)


def test_an_mp4_picture_into_webm_is_refused_before_any_work(tmp_path, speech):
    samples, rate = speech
    source = make_video(tmp_path / "talk.mp4", samples, rate)
    with pytest.raises(media.MediaError, match=r"WebM holds only VP8/VP9/AV1 video .* h264: write \.mkv"):
        media.plan(source, tmp_path / "talk.es.webm")
    with pytest.raises(media.MediaError, match=r"cannot write \.avi"):
        media.plan(source, tmp_path / "talk.es.avi")
    webm = make_video(tmp_path / "talk.webm", samples, rate)
    with pytest.raises(media.MediaError, match=r"a mov file cannot hold vp8 video: write \.mkv instead"):
        media.plan(webm, tmp_path / "talk.es.mov")


@pytest.mark.parametrize("suffix", [".mp4", ".m4a"])
def test_audio_only_input_into_a_container(tmp_path, speech, suffix):
    samples, rate = speech
    import soundfile as sf

    wav = tmp_path / "talk.wav"
    sf.write(wav, samples, rate)
    out = tmp_path / f"talk.es{suffix}"
    media.mux(wav, out, -samples, rate, media.plan(wav, out))
    [(codec, count, out_rate)] = audio_tracks(out)
    assert codec == "aac" and abs(count / out_rate - len(samples) / rate) <= 1024 / out_rate
    with av.open(str(out)) as container:
        assert not container.streams.video


def test_read_audio_takes_the_track_of_a_video(tmp_path, speech):
    samples, rate = speech
    source = make_video(tmp_path / "talk.mkv", samples, rate)
    read = media.read_audio(source, 16000)
    assert abs(len(read) - len(samples)) <= 960 // 3  # one Opus frame, at 16 kHz
    assert np.corrcoef(read[: len(samples)], samples[: len(read)])[0, 1] > 0.95


REPORT = {
    "stream_id": "dub-test",
    "fragments": [
        {
            "sequence_number": 0,
            "status": "success",
            "latency_ms": 2140,
            "processing_time_ms": 2100,
            "metadata": {"speed_ratio": 1.137},
        },
        {
            "sequence_number": 1,
            "status": "failed",
            "latency_ms": 8020,
            "processing_time_ms": 8000,
            "metadata": None,
            "error": {"code": "TIMEOUT", "stage": "tts"},
        },
    ],
}


def test_fragment_table_lists_sequence_status_latency_and_tempo():
    lines = summary.fragment_table(REPORT).splitlines()
    assert lines[0].split() == ["seq", "status", "latency", "processing", "tempo", "error"]
    assert lines[1].split() == ["0", "success", "2.14", "s", "2.10", "s", "x1.14"]
    assert lines[2].split() == ["1", "failed", "8.02", "s", "8.00", "s", "-", "TIMEOUT"]
    # Columns line up: every row starts its status at the same place.
    assert len({line.index(word) for line, word in zip(lines, ["status", "success", "failed"], strict=True)}) == 1


def test_latency_plot_is_a_png(tmp_path):
    path = tmp_path / "plots" / "latency.png"
    summary.write_latency_plot(REPORT, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
