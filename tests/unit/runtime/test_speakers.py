"""Per-stream speaker clustering and voice casting (pipeline/speakers.py), on synthetic embeddings.

The real encoder on real FLEURS speech is tested in tests/unit/engines/test_speaker_embedding.py and
over the wire in tests/integration/runtime/test_speakers.py; here the clustering rules themselves.
"""

from __future__ import annotations

import numpy as np
import pytest

from livedub.runtime.engines.base import Transcript, VoiceProfile, Word
from livedub.runtime.pipeline.speakers import (
    KOKORO_VOICE_F0,
    SpeakerTracker,
    VoiceCaster,
    identify,
    speech_of,
    voice_gender,
)

KOKORO = frozenset(KOKORO_VOICE_F0)


def unit(seed: int, near: np.ndarray | None = None, noise: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(256).astype(np.float32)
    if near is not None:
        v = near + noise * v / np.linalg.norm(v)
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_returning_speakers_keep_their_label_and_new_ones_get_the_next():
    a, b = unit(1), unit(2)
    tracker = SpeakerTracker("s", threshold=0.7, max_speakers=4)
    labels = [tracker.assign(unit(10 + i, a if i % 2 == 0 else b, 0.3), 120.0)[0].label for i in range(8)]
    assert labels == ["S1", "S2"] * 4
    assert tracker.assign(unit(3), 200.0)[0].label == "S3"


def test_the_bound_sends_a_new_voice_to_the_nearest_known_speaker():
    base = [unit(i) for i in range(5)]
    tracker = SpeakerTracker("s", threshold=0.7, max_speakers=2)
    for v in base:
        tracker.assign(v, None)
    assert len(tracker.speakers) == 2
    # The fifth, unlike both, still gets one of the two labels (the more similar one).
    speaker, _similarity = tracker.assign(base[4], None)
    sims = [float(np.dot(s.centroid, base[4])) for s in tracker.speakers]
    assert speaker is not None and speaker.label == ["S1", "S2"][int(np.argmax(sims))]


def test_too_little_speech_goes_to_the_last_speaker_or_to_nobody():
    tracker = SpeakerTracker("s")
    assert tracker.assign(None, None) == (None, None)  # nothing known yet: no label, not a made-up one
    first, _ = tracker.assign(unit(1), 110.0)
    assert tracker.assign(None, None) == (first, None)
    assert len(tracker.speakers) == 1


def test_centroids_follow_a_drifting_speaker_and_stay_unit_length():
    a = unit(1)
    tracker = SpeakerTracker("s", threshold=0.6)
    for i in range(40):
        tracker.assign(unit(100 + i, a, 0.5), None)
    assert len(tracker.speakers) == 1
    assert np.linalg.norm(tracker.speakers[0].centroid) == pytest.approx(1.0, abs=1e-5)


def test_kokoro_voices_are_gendered_by_name():
    assert {v: voice_gender(v) for v in KOKORO} == {
        "jf_alpha": "female",
        "jf_gongitsune": "female",
        "jf_nezumi": "female",
        "jf_tebukuro": "female",
        "jm_kumo": "male",
    }


def test_the_caster_matches_gender_and_pitch_and_keeps_voices_distinct():
    caster = VoiceCaster(KOKORO)
    assert caster.cast("male", 110.0, set()) == "jm_kumo"
    assert caster.cast("female", 210.0, set()) == "jf_gongitsune"  # 216 Hz: the nearest
    assert caster.cast("female", 210.0, {"jf_gongitsune"}) == "jf_nezumi"  # 240 Hz: next nearest, free
    assert caster.cast("female", 300.0, set()) == "jf_tebukuro"
    # Every voice taken: the nearest same-gender voice again (reuse beats a wrong gender).
    assert caster.cast("male", 110.0, set(KOKORO)) == "jm_kumo"
    # The only male voice taken, a second man: a free voice, the lowest-pitched one left.
    assert caster.cast("male", 110.0, {"jm_kumo"}) == "jf_gongitsune"


def test_speakers_are_cast_once_and_distinct_within_a_stream():
    tracker = SpeakerTracker("s", caster=VoiceCaster(KOKORO))
    a, b, c = unit(1), unit(2), unit(3)
    voices = {}
    for v, f0 in [(a, 110.0), (b, 210.0), (c, 215.0), (a, 180.0), (b, 100.0)]:
        speaker, _ = tracker.assign(v, f0)
        voices.setdefault(speaker.label, set()).add(speaker.voice)
    assert voices == {"S1": {"jm_kumo"}, "S2": {"jf_gongitsune"}, "S3": {"jf_nezumi"}}


def test_speech_of_cuts_the_word_spans_only():
    rate = 16000
    audio = np.zeros(6 * rate, dtype=np.float32)
    audio[rate : 2 * rate] = 1.0
    audio[4 * rate : 5 * rate] = 1.0
    words = (Word("hello", 1.15, 1.85), Word("world", 4.15, 4.85))
    speech = speech_of(audio, Transcript("hello world", "en", words=words))
    assert len(speech) == pytest.approx(1.8 * rate, abs=10)  # 2 x (0.7 s + 2 x 0.1 s padding)
    assert speech.min() == 1.0  # no pause inside


def test_identify_casts_the_voice_and_clones_per_speaker():
    rate = 16000
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(3 * rate).astype(np.float32) * 0.1
    transcript = Transcript("hi", "en", words=(Word("hi", 0.0, 3.0),))
    tracker = SpeakerTracker("stream", caster=VoiceCaster(KOKORO))
    turn = identify(lambda s: unit(1), tracker, audio, transcript, None, "es")
    assert turn.label == "S1" and turn.voice is not None and turn.voice.speaker in KOKORO
    assert turn.voice.language == "es"
    # A profile that names its own engine speaker keeps it (the user chose that voice).
    chosen = VoiceProfile(name="anchor", language="es", speaker="jf_alpha")
    assert identify(lambda s: unit(1), tracker, audio, transcript, chosen, "es").voice == chosen
    cloning = SpeakerTracker("stream", clone=True)
    t1 = identify(lambda s: unit(1), cloning, audio, transcript, None, "es")
    t2 = identify(lambda s: unit(2), cloning, audio, transcript, None, "es")
    assert t1.reference is not None and t2.reference is not None
    assert t1.reference.stream_key == "stream#S1" and t2.reference.stream_key == "stream#S2"
