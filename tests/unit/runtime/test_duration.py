import numpy as np
import pytest

from livedub.runtime.pipeline.duration import DurationPolicy, fit, trim_silence, variance

POLICY = DurationPolicy(speed_ratio_min=0.75, speed_ratio_max=1.6, success_max=0.10, partial_max=0.20)


@pytest.mark.parametrize(
    ("natural", "target", "expected"),
    [(6.0, 6.0, 1.0), (6.03, 6.0, 1.0), (7.2, 6.0, 1.2), (12.0, 6.0, 1.6), (3.0, 6.0, 0.75), (5.4, 6.0, 0.9)],
)
def test_stretch_rate_is_clamped(natural, target, expected):
    assert POLICY.stretch_rate(natural, target) == pytest.approx(expected)


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
