"""Fallback TTS: espeak-ng formant synthesis, for every language Kokoro cannot speak.

Robotic but intelligible (NOTES.md: Spanish 14-20 % WER through Whisper) and nearly free
(RTF ~0.003). Uses Debian's ``espeak-ng`` binary, which ``hack/setup.sh`` installs; speed maps to
words per minute, gender to espeak's voice variants.
"""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import soundfile as sf

from livedub.runtime.engines.base import Speech, Synthesizer, VoiceProfile
from livedub.runtime.errors import EngineError, ErrorCode

_BASE_WPM = 165


def installed_languages(binary: str = "espeak-ng") -> frozenset[str]:
    """Two-letter languages espeak-ng has a voice for (``espeak-ng --voices``)."""
    if shutil.which(binary) is None:
        return frozenset()
    listing = subprocess.run([binary, "--voices"], capture_output=True, text=True, timeout=10, check=False).stdout
    codes = {line.split()[1].split("-")[0] for line in listing.splitlines()[1:] if len(line.split()) > 1}
    return frozenset(c for c in codes if len(c) == 2)


class EspeakSynthesizer(Synthesizer):
    name = "espeak-ng"

    def __init__(self, binary: str = "espeak-ng", timeout_s: float = 10.0) -> None:
        self.binary = binary
        self.timeout_s = timeout_s
        self._languages = installed_languages(binary)

    @property
    def languages(self) -> frozenset[str]:
        return self._languages

    def synthesize(self, text: str, *, language: str, voice: VoiceProfile | None = None, speed: float = 1.0) -> Speech:
        lang = language.split("-")[0].lower()
        if lang not in self._languages:
            raise EngineError(ErrorCode.UNSUPPORTED_LANGUAGE, f"espeak-ng has no voice for '{language}'", retryable=False)
        variant = "+m3" if voice is not None and voice.gender == "male" else "+f3"
        command = [self.binary, "--stdout", "-v", lang + variant, "-s", str(int(_BASE_WPM * max(0.5, min(speed, 3.0)))), text]
        try:
            done = subprocess.run(command, capture_output=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise EngineError(ErrorCode.TIMEOUT, f"espeak-ng took over {self.timeout_s}s") from exc
        if done.returncode != 0 or not done.stdout:
            raise EngineError(ErrorCode.INTERNAL, f"espeak-ng failed: {done.stderr.decode(errors='replace')[:200]}")
        audio, rate = sf.read(io.BytesIO(done.stdout), dtype="float32")
        return Speech(np.asarray(audio, dtype=np.float32), int(rate))
