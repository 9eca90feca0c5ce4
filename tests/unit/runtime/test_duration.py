import numpy as np
import pytest

from livedub.runtime.engines.base import Transcript, Word
from livedub.runtime.pipeline.duration import DurationPolicy, fit, trim_silence, variance
from livedub.runtime.pipeline.tempo import Slot

POLICY = DurationPolicy(speed_ratio_min=0.75, speed_ratio_max=1.6, success_max=0.10, partial_max=0.20)


@pytest.mark.parametrize(
    ("natural", "expected"),
    [
        (6.0, 1.0),  # fits the whole-fragment span exactly
        (7.2, 1.2),  # longer than the fragment: sped up to fit it
        (12.0, 1.6),  # far too long: the clamp; the overrun is graded
        (3.0, 1.0),  # far too short: natural tempo, silence after it (not slowed to 0.75)
        (5.7, 0.95),  # a small gap is closed by a gentle slow-down
    ],
)
def test_tempo_in_a_whole_fragment_slot(natural, expected):
    assert POLICY.tempo(natural, Slot(0.0, 6.0, 6.0)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("natural", "expected"),
    [
        (2.0, 1.0),  # shorter than the 3 s span: natural, padded
        (3.15, 1.05),  # a little longer: sped up to the span
        (4.5, 1.1),  # longer: at most 1.1 towards the span, the rest spills into the pause
        (6.6, 1.1),  # spill up to the fragment's end is fine
        (7.2, 1.2),  # longer than the fragment: fits the fragment
    ],
)
def test_tempo_aims_at_the_speech_span(natural, expected):
    assert POLICY.tempo(natural, Slot(1.0, 3.0, 6.0)) == pytest.approx(expected)


def test_stretch_is_what_the_tts_speed_left_to_do():
    slot = Slot(0.0, 6.0, 6.0)
    # Said at 1.1 it already fits a line of 6.6 s natural: no stretch, tempo 1.1.
    assert POLICY.stretch_for(6.6, 1.1, slot) == (1.0, 1.1)
    stretch, tempo = POLICY.stretch_for(7.2, 1.1, slot)
    assert tempo == pytest.approx(1.2) and stretch == pytest.approx(1.2 / 1.1)


def test_slot_from_asr_timestamps():
    assert Slot.of(Transcript("hola", "es", speech_start=0.5, speech_end=4.0), 6.0) == Slot(0.5, 3.5, 6.0)
    words = (Word("a", 1.0, 1.5), Word("b", 2.0, 2.5))
    assert Slot.of(Transcript("a b", "en", words=words), 6.0) == Slot(1.0, 1.5, 6.0)
    # No end known: the span runs to the fragment's end; timestamps are clipped to the fragment.
    assert Slot.of(Transcript("x", "en", speech_start=2.0), 6.0) == Slot(2.0, 4.0, 6.0)
    assert Slot.of(Transcript("x", "en", speech_start=1.0, speech_end=9.0), 6.0) == Slot(1.0, 5.0, 6.0)
    assert Slot(1.0, 3.0, 6.0).budget_s == pytest.approx(3.3)


def test_grades_follow_the_guide_thresholds():
    assert POLICY.grade(0.0) == "success"
    assert POLICY.grade(0.10) == "success"
    assert POLICY.grade(0.15) == "partial"
    assert POLICY.grade(0.20) == "partial"
    assert POLICY.grade(0.21) == "failed"
    assert variance(6.2, 6.0) == pytest.approx(0.0333, abs=1e-3)


def test_short_speech_is_padded_from_the_speakers_start():
    speech = np.ones(1000, dtype=np.float32)
    out = fit(speech, 1000, 3000, speech_start_s=0.5)
    assert len(out) == 3000
    assert out[:500].sum() == 0 and out[500:1500].sum() == 1000 and out[1500:].sum() == 0


def test_start_offset_never_pushes_speech_past_the_end():
    out = fit(np.ones(2500, dtype=np.float32), 1000, 3000, speech_start_s=2.0)
    assert len(out) == 3000 and out[-1] == 1.0


def test_tail_within_tolerance_is_trimmed_longer_speech_kept_whole():
    assert len(fit(np.ones(3010, dtype=np.float32), 1000, 3000)) == 3000
    assert len(fit(np.ones(3500, dtype=np.float32), 1000, 3000)) == 3500


def test_trim_silence_keeps_speech_and_a_margin():
    rate = 16000
    audio = np.zeros(rate * 2, dtype=np.float32)
    audio[rate // 2 : rate] = 0.5 * np.sin(np.linspace(0, 2000, rate // 2))
    trimmed = trim_silence(audio, rate)
    assert 0.5 <= len(trimmed) / rate <= 0.6
    assert trim_silence(np.zeros(rate, dtype=np.float32), rate).size == 0
