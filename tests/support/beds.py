"""Non-speech beds to put under FLEURS speech: the shared data has no music, so it is synthesised.

``music_bed`` is music-like on purpose: a chord progression of harmonic tones (what a 2-stem model
calls accompaniment) over a kick-and-hat beat, not a test tone. ``noise_bed`` is pink-ish noise.
"""

from __future__ import annotations

import numpy as np

#: A-minor, F, C, G: four bars, each chord's fundamentals in Hz.
_CHORDS = ((220.0, 261.6, 329.6), (174.6, 220.0, 261.6), (130.8, 164.8, 196.0), (196.0, 246.9, 293.7))


def music_bed(samples: int, rate: int, *, bpm: float = 100.0, level: float = 0.1) -> np.ndarray:
    t = np.arange(samples) / rate
    beat_s = 60.0 / bpm
    bar = (t // (4 * beat_s)).astype(int) % len(_CHORDS)
    chords = np.zeros(samples)
    for index, chord in enumerate(_CHORDS):
        where = bar == index
        for f in chord:
            for harmonic in range(1, 6):  # a bright pad: five harmonics falling off as 1/h
                chords[where] += np.sin(2 * np.pi * f * harmonic * t[where]) / harmonic
    phase = (t % beat_s) / beat_s
    kick = np.sin(2 * np.pi * 55 * t) * np.exp(-phase * 18)
    rng = np.random.default_rng(1)
    hat_phase = (t % (beat_s / 2)) / (beat_s / 2)
    hats = rng.standard_normal(samples) * np.exp(-hat_phase * 60) * 0.3
    bed = chords / np.max(np.abs(chords)) + 0.8 * kick + hats
    return (bed / np.max(np.abs(bed)) * level).astype(np.float32)


def noise_bed(samples: int, rate: int, *, level: float = 0.05, seed: int = 0) -> np.ndarray:
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(samples))
    freqs = np.fft.rfftfreq(samples, 1 / rate)
    spectrum /= np.sqrt(np.maximum(freqs, 20.0))  # 1/f power: pink-ish, like room and crowd noise
    noise = np.fft.irfft(spectrum, samples)
    return (noise / np.max(np.abs(noise)) * level).astype(np.float32)
