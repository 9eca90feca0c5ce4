import pytest

from livedub.runtime.pipeline.prefit import MAX_SPEED, MIN_SPEED, SpeakingRate


def test_unknown_language_speaks_at_normal_speed():
    assert SpeakingRate().speed_for("kokoro", "es", "hola mundo", 6.0) == 1.0


def test_learns_seconds_per_character_normalised_to_speed_one():
    rate = SpeakingRate()
    rate.observe("kokoro", "es", "x" * 100, seconds=8.0, speed=1.0)  # 0.08 s/char
    assert rate.speed_for("kokoro", "es", "y" * 100, 6.0) == pytest.approx(8.0 / 6.0)
    # Spoken at 1.2x it took 5 s: that is 6 s at speed 1.0, i.e. 0.06 s/char; the EMA moves toward it.
    rate.observe("kokoro", "es", "x" * 100, seconds=5.0, speed=1.2)
    assert rate.speed_for("kokoro", "es", "x" * 100, 6.0) == pytest.approx((0.7 * 0.08 + 0.3 * 0.06) * 100 / 6.0)


def test_speed_is_clamped_and_keyed_by_engine_and_language():
    rate = SpeakingRate()
    rate.observe("kokoro", "es", "abc", seconds=30.0, speed=1.0)
    assert rate.speed_for("kokoro", "es", "abc", 1.0) == MAX_SPEED
    assert rate.speed_for("kokoro", "es", "a", 100.0) == MIN_SPEED
    assert rate.speed_for("espeak", "es", "abc", 1.0) == 1.0
