"""Fallback TTS: espeak-ng formant synthesis, for every language Kokoro cannot speak.

Robotic but intelligible (NOTES.md: Spanish 14-20 % WER through Whisper) and nearly free (RTF
~0.003). Two ways to reach it, same voices and output:

* ``library`` (preferred): libespeak-ng and its data bundled in the ``espeakng-loader`` wheel,
  called in-process through ctypes (synchronous mode, samples collected by a callback). Needs no
  apt package, and starts no process per fragment.
* ``binary``: Debian's ``espeak-ng --stdout`` (a WAV on stdout), used when the wheel is missing or
  its library will not load.

Speed maps to words per minute (espeak's default 175 wpm x ``speed``), gender to espeak's voice
variants (``+f3`` / ``+m3``). espeak-ng keeps process-global state, so there is one library object
per process and its calls are serialised by a lock; at RTF ~0.001 that costs nothing.
"""

from __future__ import annotations

import ctypes
import io
import logging
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import soundfile as sf

from livedub.runtime.engines.base import Speech, Synthesizer, VoiceProfile
from livedub.runtime.errors import EngineError, ErrorCode, ModelLoadError

log = logging.getLogger(__name__)

#: espeak-ng's own default rate (words per minute) is what ``speed`` 1.0 means.
BASE_WPM = 175
#: espeak-ng accepts 80-450 wpm; beyond ~2.5x it is no longer intelligible.
MIN_WPM, MAX_WPM = 80, 450
#: Which regional voice a bare ISO 639-1 code means (espeak's bare "en" is British, "pt" European).
PREFERRED = {"en": "en-us", "fr": "fr-fr", "pt": "pt-br", "es": "es", "vi": "vi"}
VARIANTS = {"female": "+f3", "male": "+m3"}

# espeak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


class _Library:
    """libespeak-ng from the espeakng-loader wheel, in-process.

    The library has one global state (voice, rate, callback) per process, so there is one
    ``_Library`` per process (:meth:`shared`) and every call holds its lock.
    """

    kind = "library"
    _instance: _Library | None = None
    _instance_lock = threading.Lock()

    @classmethod
    def shared(cls) -> _Library:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        # espeak_Initialize wants the directory that *contains* espeak-ng-data.
        home = str(Path(espeakng_loader.get_data_path()).parent).encode()
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, home, 0)
        if self.sample_rate <= 0:
            raise OSError(f"espeak_Initialize failed ({self.sample_rate})")
        self.lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept on self: ctypes must not free it
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # 0 = keep going

    def voices(self) -> dict[str, str]:
        """{language code: voice identifier}. ``espeak_SetVoiceByName`` takes identifiers
        (``roa/fr+m3``), not every language code (``fr-fr+m3`` fails)."""
        listing = self._lib.espeak_ListVoices(None)
        codes: dict[str, str] = {}
        index = 0
        while listing[index]:
            voice = listing[index].contents
            # ``languages`` is a packed list of (priority byte, NUL-terminated name); the first is enough.
            code = (voice.languages or b"")[1:].split(b"\0")[0].decode("ascii", "replace").lower()
            codes.setdefault(code, (voice.identifier or b"").decode("ascii", "replace"))
            index += 1
        return codes

    def synthesize(self, text: str, voice: str, wpm: int) -> tuple[np.ndarray, int]:
        with self.lock:
            return self._synthesize(text, voice, wpm)

    def _synthesize(self, text: str, voice: str, wpm: int) -> tuple[np.ndarray, int]:
        self._chunks = []
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EngineError(ErrorCode.INTERNAL, f"espeak-ng cannot load voice '{voice}'", retryable=False)
        self._lib.espeak_SetParameter(_ESPEAK_RATE, wpm, 0)
        data = text.encode("utf-8")
        status = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        if status != 0:
            raise EngineError(ErrorCode.INTERNAL, f"espeak_Synth failed ({status})", retryable=False)
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
        self._chunks = []
        return audio, self.sample_rate


class _Binary:
    """Debian's ``espeak-ng`` command, one process per call."""

    kind = "binary"

    def __init__(self, binary: str, timeout_s: float) -> None:
        if shutil.which(binary) is None:
            raise OSError(f"{binary} is not on PATH")
        self.binary = binary
        self.timeout_s = timeout_s

    def voices(self) -> dict[str, str]:
        """{language code: the same code}: the command line takes language codes with ``-v``."""
        listing = subprocess.run(
            [self.binary, "--voices"], capture_output=True, text=True, timeout=self.timeout_s, check=False
        ).stdout
        codes = (line.split()[1].lower() for line in listing.splitlines()[1:] if len(line.split()) > 1)
        return {code: code for code in codes}

    def synthesize(self, text: str, voice: str, wpm: int) -> tuple[np.ndarray, int]:
        # "--" ends options: text starting with "-" is spoken, not parsed.
        command = [self.binary, "--stdout", "-v", voice, "-s", str(wpm), "--", text]
        try:
            done = subprocess.run(command, capture_output=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise EngineError(ErrorCode.TIMEOUT, f"espeak-ng took over {self.timeout_s}s") from exc
        if done.returncode != 0 or not done.stdout:
            raise EngineError(ErrorCode.INTERNAL, f"espeak-ng failed: {done.stderr.decode(errors='replace')[:200]}")
        audio, rate = sf.read(io.BytesIO(done.stdout), dtype="int16")
        return np.asarray(audio), int(rate)


class EspeakSynthesizer(Synthesizer):
    def __init__(self, backend: str = "auto", *, binary: str = "espeak-ng", timeout_s: float = 10.0) -> None:
        """``backend``: ``auto`` (library, else binary), ``library`` or ``binary``."""
        self._backend: _Library | _Binary | None = None
        errors = []
        for kind in ("library", "binary") if backend == "auto" else (backend,):
            try:
                self._backend = _Library.shared() if kind == "library" else _Binary(binary, timeout_s)
                break
            except Exception as exc:
                errors.append(f"{kind}: {exc}")
        if self._backend is None:
            if backend != "auto":
                raise ModelLoadError(f"espeak-ng unavailable ({'; '.join(errors)})")
            log.warning("espeak-ng unavailable (%s): it offers no languages", "; ".join(errors))
            self._voices: dict[str, str] = {}
        else:
            self._voices = self._backend.voices()
        self.name = f"espeak-ng-{self._backend.kind}" if self._backend else "espeak-ng"
        self._languages = frozenset(v.split("-")[0] for v in self._voices if len(v.split("-")[0]) == 2)

    @property
    def languages(self) -> frozenset[str]:
        return self._languages

    def voice_for(self, language: str) -> str:
        """The espeak language for an ISO 639-1 code or a regional one (``pt-BR``, ``en-GB``)."""
        code = language.lower()
        if code in self._voices:
            return code
        base = code.split("-")[0]
        if base not in self._languages:
            raise EngineError(
                ErrorCode.UNSUPPORTED_LANGUAGE, f"espeak-ng has no voice for '{language}'", retryable=False
            )
        preferred = PREFERRED.get(base, base)
        if preferred in self._voices:
            return preferred
        return base if base in self._voices else min(v for v in self._voices if v.split("-")[0] == base)

    def validate_voice(self, voice: VoiceProfile) -> None:
        if voice.gender not in (None, *VARIANTS):
            raise EngineError(
                ErrorCode.INVALID_VOICE_PROFILE, f"gender must be female or male, not '{voice.gender}'", retryable=False
            )

    def synthesize(self, text: str, *, language: str, voice: VoiceProfile | None = None, speed: float = 1.0) -> Speech:
        name = self._voices[self.voice_for(language)] + VARIANTS.get(
            (voice.gender if voice else None) or "female", "+f3"
        )
        wpm = int(np.clip(BASE_WPM * speed, MIN_WPM, MAX_WPM))
        if self._backend is None:
            raise EngineError(ErrorCode.UNSUPPORTED_LANGUAGE, "espeak-ng is not installed", retryable=False)
        if not text.strip():
            return Speech(np.zeros(0, dtype=np.float32), self._sample_rate())
        audio, rate = self._backend.synthesize(text, name, wpm)
        return Speech((audio.astype(np.float32) / 32768.0).reshape(-1), rate)

    def _sample_rate(self) -> int:
        return self._backend.sample_rate if isinstance(self._backend, _Library) else 22_050
