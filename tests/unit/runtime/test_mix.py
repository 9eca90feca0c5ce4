"""The mix stage's pure parts on real FLEURS speech: ducking envelope, loudness matching, guards."""

from __future__ import annotations

import numpy as np
import pytest

from livedub.runtime.audio import loudness
from livedub.runtime.pipeline.mix import LoudnessPolicy, Mixer, MixOptions, duck_gain
from support.beds import music_bed
from support.data import fleurs

SR = 16000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return fleurs("fleurs-en-000")[0][: 6 * SR]


def _dub(n: int) -> np.ndarray:
    """Spanish FLEURS speech from 2 s to 5 s of the fragment, silence around it (like a fitted dub)."""
    dub = np.zeros(n, np.float32)
    dub[2 * SR : 5 * SR] = fleurs("fleurs-es-001")[0][SR : 4 * SR]
    return dub


def test_duck_gain_is_full_in_pauses_ducked_under_speech_with_fades_that_finish_at_the_onset(speech):
    dub = _dub(len(speech))
    gain = duck_gain(dub, SR, duck_db=12, fade_ms=250)
    assert gain.shape == dub.shape and gain.dtype == np.float32
    assert np.allclose(gain[: int(1.5 * SR)], 1.0)  # long before the dub speaks: untouched
    first = int(np.flatnonzero(np.abs(dub) > 1e-3)[0])
    # Ducked by the dub's first 20 ms (the envelope's resolution is 10 ms frames).
    assert gain[first + int(0.02 * SR)] == pytest.approx(10 ** (-12 / 20), abs=0.02)
    ramp = gain[first - int(0.25 * SR) : first]
    assert np.all(np.diff(ramp) <= 1e-6) and ramp[0] > 0.9  # a 250 ms ramp down before it
    assert np.allclose(gain[-int(0.5 * SR) :], 1.0)  # back up after the speech


def test_a_dub_speaking_to_the_fragment_end_stays_ducked_there(speech):
    dub = np.zeros(len(speech), np.float32)
    dub[3 * SR :] = speech[3 * SR :]
    gain = duck_gain(dub, SR, duck_db=20, fade_ms=500)
    assert gain[-1] == pytest.approx(0.1, abs=0.01)  # no ramp back up at the boundary


@pytest.mark.parametrize("channels", [1, 2, 6, 8])
def test_voiceover_keeps_length_and_channels_and_the_input_loudness(speech, channels):
    bed = music_bed(len(speech), SR, level=0.05)
    original = np.stack([(speech + bed * (c + 1) / channels) * (1 - 0.05 * c) for c in range(channels)], axis=1)
    original = original[:, 0] if channels == 1 else original
    result = Mixer(LoudnessPolicy()).mix(original.astype(np.float32), SR, _dub(len(speech)), MixOptions("voiceover"))
    expected = (len(speech),) if channels == 1 else (len(speech), channels)
    assert result.audio.reshape(expected).shape == expected and result.audio.dtype == np.float32
    assert np.isfinite(result.audio).all()
    before = loudness.integrated_lufs(original, SR)
    after = loudness.integrated_lufs(result.audio if channels > 1 else result.audio[:, 0], SR)
    assert before is not None and after is not None and abs(after - before) < 0.5
    assert {"voiceover_ms", "loudness_ms"} <= set(result.timings_ms)


def test_silence_and_too_short_audio_get_no_gain_and_no_nan():
    silent = np.zeros(SR, np.float32)
    assert loudness.integrated_lufs(silent, SR) is None
    assert loudness.integrated_lufs(np.ones(100, np.float32) * 0.1, SR) is None  # under one 400 ms block
    out, info = loudness.match(silent, SR, -23.0, max_gain_db=20, ceiling_db=-1)
    assert info.gain_db == 0.0 and np.array_equal(out, silent)
    mixer = Mixer(LoudnessPolicy(match_dub=True))
    for n in (1, 100, SR // 4):
        result = mixer.mix(np.zeros(n, np.float32), SR, np.ones(n, np.float32) * 0.1, MixOptions("voiceover"))
        assert result.audio.shape[0] == n and np.isfinite(result.audio).all()


def test_gain_is_limited_and_never_pushes_the_peak_over_the_ceiling(speech):
    quiet = speech  # FLEURS is quiet: ~ -48 LUFS, 38 LU under a -10 LUFS reference
    out, info = loudness.match(quiet, SR, -10.0, max_gain_db=20, ceiling_db=-1)
    assert info.gain_db == pytest.approx(20.0)
    loud = speech / np.max(np.abs(speech)) * 0.9
    out, info = loudness.match(loud, SR, 0.0, max_gain_db=40, ceiling_db=-1)
    assert loudness.peak(out, SR) <= 10 ** (-1 / 20) + 1e-3


def test_dub_is_untouched_unless_loudness_matching_of_dub_is_on(speech):
    dub = _dub(len(speech))
    assert not Mixer(LoudnessPolicy()).needed(MixOptions("dub"))
    matched = Mixer(LoudnessPolicy(match_dub=True)).mix(speech, SR, dub * 0.1, MixOptions("dub"))
    assert matched.audio.ndim == 1
    assert abs(loudness.integrated_lufs(matched.audio, SR) - loudness.integrated_lufs(speech, SR)) < 0.5


@pytest.mark.parametrize("right", ["silent", "quiet ambience"])
def test_a_matched_dub_of_a_one_sided_stereo_programme_has_the_programmes_loudness(speech, right):
    """The dub alone goes out as mono on every channel of the input's layout; with the programme on the
    left only (a commentary channel, a dual-mono feed), matching it to the channels' mean left it 3 LU
    quiet. What is compared must be what is sent: the dub on both channels against the stereo input."""
    other = np.zeros_like(speech) if right == "silent" else music_bed(len(speech), SR, level=0.005)
    original = np.stack([speech, other], axis=1).astype(np.float32)
    result = Mixer(LoudnessPolicy(match_dub=True)).mix(original, SR, _dub(len(speech)) * 0.3, MixOptions("dub"))
    assert result.audio.ndim == 1  # mono: the encoder writes it on every channel
    sent = np.stack([result.audio, result.audio], axis=1)
    before, after = loudness.integrated_lufs(original, SR), loudness.integrated_lufs(sent, SR)
    assert before is not None and after is not None and abs(after - before) < 0.5, (before, after)


def test_neighbouring_fragments_meet_at_one_gain_in_either_order(speech):
    """Fragment 0's dub speaks to its end (ducked there); fragment 1's starts after a pause. Mixed
    through one stream's carry, whichever is mixed second blends into the gain the other left at
    their boundary over one fade; a fragment with no mixed neighbour keeps its own envelope."""
    from livedub.runtime.pipeline.mix import DuckCarry

    to_the_end = np.zeros(len(speech), np.float32)
    to_the_end[3 * SR :] = speech[3 * SR :]
    after_a_pause = _dub(len(speech))
    mixer, options = Mixer(LoudnessPolicy()), MixOptions("voiceover", duck_db=12, fade_ms=250)
    alone = duck_gain(to_the_end, SR, 12, 250)
    assert alone[-1] < 0.3 and duck_gain(after_a_pause, SR, 12, 250)[0] == pytest.approx(1.0)

    in_order = DuckCarry()
    mixer.mix(speech, SR, to_the_end, options, (in_order, 0))
    before, after = in_order.neighbours(1)
    assert before == pytest.approx(float(alone[-1])) and after is None
    second = duck_gain(after_a_pause, SR, 12, 250, before, after)
    assert second[0] == pytest.approx(alone[-1], abs=1e-6)  # no step at the boundary
    assert np.all(np.abs(np.diff(second[: int(0.25 * SR)])) < 1e-3)  # a ramp, not a jump
    assert np.allclose(second[int(0.3 * SR) : int(1.5 * SR)], 1.0)  # then its own envelope
    assert in_order.neighbours(5) == (None, None)  # only the very next fragments

    reversed_order = DuckCarry()  # the pause after the speech is answered first
    mixer.mix(speech, SR, after_a_pause, options, (reversed_order, 1))
    before, after = reversed_order.neighbours(0)
    assert before is None and after == pytest.approx(1.0)
    first = duck_gain(to_the_end, SR, 12, 250, before, after)
    assert first[-1] == pytest.approx(1.0, abs=1e-6) and np.all(np.abs(np.diff(first[-int(0.25 * SR) :])) < 1e-3)
    assert np.allclose(first[3 * SR + int(0.1 * SR) : -int(0.3 * SR)], alone[3 * SR + int(0.1 * SR) : -int(0.3 * SR)])


def test_audio_under_the_absolute_gate_is_measured_when_asked(speech):
    level = loudness.integrated_lufs(speech, SR)
    assert level is not None
    quiet = speech * np.float32(10 ** ((-80 - level) / 20))
    assert loudness.integrated_lufs(quiet, SR) is None  # BS.1770's gate, as pyloudnorm applies it
    assert loudness.integrated_lufs(quiet, SR, below_gate=True) == pytest.approx(-80.0, abs=0.01)
    assert loudness.integrated_lufs(np.zeros(SR, np.float32), SR, below_gate=True) is None  # silence stays silent
    dub = _dub(len(speech))  # a dub at FLEURS level over that whisper comes down to it
    result = Mixer(LoudnessPolicy()).mix(quiet, SR, dub, MixOptions("voiceover"))
    after = loudness.integrated_lufs(result.audio[:, 0], SR, below_gate=True)
    assert after is not None and abs(after + 80) < 1.0, after
