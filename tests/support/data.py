"""The shared, real evaluation data (FLEURS speech, Tatoeba sentences) that tests read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()
FLEURS = SHARED_DATA / "fleurs"
TATOEBA = SHARED_DATA / "tatoeba" / "eng-spa.tsv"


def fleurs(name: str) -> tuple[np.ndarray, int]:
    """A FLEURS clip as mono float32 and its rate."""
    audio, rate = sf.read(FLEURS / f"{name}.ogg", dtype="float32")
    return audio, rate


def fleurs_text(name: str) -> str:
    return (FLEURS / f"{name}.txt").read_text().strip()
