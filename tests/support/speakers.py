"""Streams of several FLEURS speakers, for the speaker and caption tests and bench/speakers.py.

FLEURS carries no speaker or gender metadata, and clips of one language often share a reader. The
groups below were found with the embedding (bench/speakers.py prints the matrix): within a group
6 s pieces score 0.77-0.97 cosine, across groups at most 0.50 (en) / 0.78 (es-007 vs the en women).
Gender is each clip's median F0 by pYIN (librosa), measured here, not assumed:

| speaker | clips                      | median F0 (Hz)  | gender |
| ------- | -------------------------- | --------------- | ------ |
| A       | en-001, en-005, en-008     | 112, 117-148, 95-105 | male   |
| B       | en-002, en-006, en-009     | 206-210, 145-175, 170-195 | female |
| C       | es-003, es-004             | 106             | male   |
| D       | es-007                     | 172-211         | female |

The tests re-measure F0 and similarity rather than trusting this table.
"""

from __future__ import annotations

import numpy as np

from support.data import fleurs

RATE = 16_000
SPEAKERS = {
    "A": ("fleurs-en-001", "fleurs-en-005", "fleurs-en-008"),
    "B": ("fleurs-en-002", "fleurs-en-006", "fleurs-en-009"),
    "C": ("fleurs-es-003", "fleurs-es-004"),
    "D": ("fleurs-es-007",),
}
GENDER = {"A": "male", "B": "female", "C": "male", "D": "female"}


def piece(name: str, index: int = 0, seconds: float = 6.0) -> np.ndarray:
    audio, rate = fleurs(name)
    assert rate == RATE
    size = int(seconds * RATE)
    return audio[index * size : (index + 1) * size]


def pyin_f0(audio: np.ndarray) -> float:
    """Median F0 by pYIN: slower than the runtime's YIN, used here as an independent measure."""
    import librosa

    f0, voiced, _ = librosa.pyin(audio, fmin=65, fmax=400, sr=RATE, frame_length=1024)
    return float(np.nanmedian(f0[voiced]))


def alternating(order: str = "ABAB", seconds: float = 6.0) -> list[tuple[str, np.ndarray]]:
    """Fragments of the speakers in ``order``; each turn of a speaker takes that speaker's next clip."""
    used = dict.fromkeys(SPEAKERS, 0)
    out = []
    for who in order:
        clips = SPEAKERS[who]
        out.append((who, piece(clips[used[who] % len(clips)], used[who] // len(clips), seconds)))
        used[who] += 1
    return out
