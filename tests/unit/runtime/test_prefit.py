import pytest

from livedub.runtime.pipeline.prefit import MAX_SPEED, SpeakingRate
from livedub.runtime.pipeline.tempo import Slot


def whole(seconds: float) -> Slot:
    return Slot(0.0, seconds, seconds)


def test_unknown_language_speaks_at_normal_speed():
    assert SpeakingRate().speed_for("kokoro", "es", "hola mundo", whole(6.0)) == 1.0


def test_learns_seconds_per_character_normalised_to_speed_one():
    rate = SpeakingRate()
    rate.observe("kokoro", "es", "x" * 100, seconds=8.0, speed=1.0)  # 0.08 s/char
    assert rate.speed_for("kokoro", "es", "y" * 100, whole(6.0)) == pytest.approx(8.0 / 6.0)
    # Spoken at 1.2x it took 5 s: that is 6 s at speed 1.0, i.e. 0.06 s/char; the EMA moves toward it.
    rate.observe("kokoro", "es", "x" * 100, seconds=5.0, speed=1.2)
    assert rate.speed_for("kokoro", "es", "x" * 100, whole(6.0)) == pytest.approx((0.7 * 0.08 + 0.3 * 0.06) * 100 / 6.0)


def test_speed_is_clamped_and_keyed_by_engine_and_language():
    rate = SpeakingRate()
    rate.observe("kokoro", "es", "abc", seconds=30.0, speed=1.0)
    assert rate.speed_for("kokoro", "es", "abc", whole(1.0)) == MAX_SPEED
    # A line far shorter than its slot is said at natural speed, not slowed down to fill it.
    assert rate.speed_for("kokoro", "es", "a", whole(100.0)) == 1.0
    assert rate.speed_for("espeak", "es", "abc", whole(1.0)) == 1.0


def test_speed_aims_at_the_speech_span_not_the_fragment():
    rate = SpeakingRate()
    rate.observe("kokoro", "es", "x" * 10, seconds=1.0, speed=1.0)  # 0.1 s/char
    # 40 characters = 4 s of speech for a 3 s span in a 6 s fragment: sped up by at most 1.1, the rest
    # spills into the pause after the speech.
    assert rate.speed_for("kokoro", "es", "x" * 40, Slot(1.0, 3.0, 6.0)) == pytest.approx(1.1)
    # 70 characters = 7 s: must fit the 6 s fragment.
    assert rate.speed_for("kokoro", "es", "x" * 70, Slot(1.0, 3.0, 6.0)) == pytest.approx(7 / 6)
