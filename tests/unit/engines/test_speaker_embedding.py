"""The packaged d-vector encoder and the pitch estimate on real FLEURS speakers (support/speakers.py).

This is where the speaker table's claims are checked: the gender of every clip by its measured F0
(pYIN, independent of the runtime's YIN), and the grouping of clips into speakers by the embedding
against the runtime's threshold.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from livedub.runtime.engines.speaker_embedding import SpeakerEmbedder, gender_of, median_f0
from livedub.runtime.pipeline.speakers import DEFAULT_THRESHOLD
from support.speakers import GENDER, SPEAKERS, piece, pyin_f0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedder() -> SpeakerEmbedder:
    return SpeakerEmbedder()


@pytest.fixture(scope="module")
def pieces(shared_data) -> dict[str, list[np.ndarray]]:
    return {who: [piece(clip) for clip in clips] for who, clips in SPEAKERS.items()}


def test_each_speakers_gender_is_what_its_pitch_says(pieces):
    table = {}
    for who, audio in pieces.items():
        f0 = [pyin_f0(a) for a in audio]
        table[who] = [round(f) for f in f0]
        print(who, GENDER[who], table[who], [round(median_f0(a) or 0) for a in audio])
        for a, f in zip(audio, f0, strict=True):
            assert gender_of(f) == GENDER[who]
            # The runtime's cheap YIN agrees with pYIN on the gender of every clip.
            assert gender_of(median_f0(a)) == GENDER[who], (who, f, median_f0(a))


def test_one_speakers_clips_match_and_other_speakers_do_not(embedder, pieces):
    vectors = {who: [embedder.embed(a) for a in audio] for who, audio in pieces.items()}
    for v in itertools.chain.from_iterable(vectors.values()):
        assert v.shape == (embedder.dim,) and abs(float(np.linalg.norm(v)) - 1) < 1e-4
    same = [float(a @ b) for vs in vectors.values() for a, b in itertools.combinations(vs, 2)]
    cross = [float(a @ b) for (p, vs), (q, ws) in itertools.combinations(vectors.items(), 2) for a in vs for b in ws]
    print(f"same speaker {min(same):.2f}-{max(same):.2f}, different {min(cross):.2f}-{max(cross):.2f}")
    assert min(same) >= DEFAULT_THRESHOLD
    assert max(cross) < DEFAULT_THRESHOLD


def test_silence_and_noise_have_no_pitch(embedder):
    rng = np.random.default_rng(0)
    assert median_f0(np.zeros(16000 * 3, dtype=np.float32)) is None
    assert median_f0(np.zeros(100, dtype=np.float32)) is None
    noise = (rng.standard_normal(16000 * 3) * 0.05).astype(np.float32)
    f0 = median_f0(noise)
    assert f0 is None or 65 <= f0 <= 400  # nothing, or a pitch in range: never a crash or NaN
    assert np.isfinite(embedder.embed(noise)).all()
