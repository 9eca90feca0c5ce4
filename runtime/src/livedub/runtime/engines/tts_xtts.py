"""Coqui XTTS v2 (``coqui-tts``, the maintained fork): multilingual TTS cloning a voice from seconds of audio.

Why it is built this way:

* **torch and TTS are imported inside the class, never at module level**, so the embedded (torch-free)
  install can import the engine package, read this module's constants and fail with a clear
  :class:`~livedub.runtime.errors.ModelLoadError` only when ``TTS_ENGINE=xtts`` is actually chosen.
* **Weights are never downloaded.** The model comes from a mounted directory (``TTS_MODEL_PATH`` with
  ``config.json``, ``model.pth``, ``vocab.json`` and optionally ``speakers_xtts.pth``) or from a cache
  that is already populated (coqui-tts keeps XTTS v2 in the Hugging Face hub cache since 0.25; older
  releases used ``$TTS_HOME/tts/tts_models--multilingual--multi-dataset--xtts_v2``). XTTS needs its
  licence accepted (CPML), which a runtime pod cannot do at start-up.
* **Conditioning is the expensive part of cloning**, so ``(gpt_cond_latent, speaker_embedding)`` is
  computed once per voice profile and kept in an LRU keyed by profile name, reference path and the
  file's ``mtime``/size: editing or re-mounting the reference recomputes it, nothing else does.
* **Reference audio is read with soundfile and resampled in torch**, not with ``torchaudio.load``:
  since torch 2.9 that goes through torchcodec, an FFmpeg-linked extra whose wheels are built for one
  torch/CUDA pairing; soundfile is already a runtime dependency and the same code path serves the
  in-memory audio of the ``source`` voice.
* **One lock around the model.** The pipeline calls ``synthesize`` from worker threads; a torch
  module is not safe to run concurrently, and on one GPU parallel calls would only contend.
* **The** ``source`` **voice** clones the live speaker. Callers pass recent audio as a
  :class:`~livedub.runtime.engines.voices.SourceReference` (``reference=``); conditioning is cached
  per ``stream_key`` and recomputed only when the audio's ``version`` changed *and*
  ``source_refresh_s`` passed, which bounds the cost to one conditioning pass per stream per interval.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from livedub.runtime.engines.base import Samples, Speech, Synthesizer, VoiceProfile
from livedub.runtime.engines.torch_device import resolve_device
from livedub.runtime.engines.voices import SourceReference, invalid_voice, is_source_voice, reference_problem
from livedub.runtime.errors import EngineError, ErrorCode, ModelLoadError, Stage

log = logging.getLogger(__name__)

#: Where coqui-tts (>= 0.25) fetches XTTS v2 from; used only to find an already populated cache.
XTTS_HUB_REPO = "tts-hub/XTTS-v2"
#: coqui-tts < 0.25 kept downloaded models here, under ``$TTS_HOME/tts`` (or ``$XDG_DATA_HOME/tts``).
LEGACY_MODEL_DIR_NAME = "tts_models--multilingual--multi-dataset--xtts_v2"
REQUIRED_FILES = ("config.json", "model.pth", "vocab.json")
SPEAKERS_FILE = "speakers_xtts.pth"
#: XTTS's GPT conditioning and DVAE run at 22.05 kHz; its decoder writes 24 kHz.
CONDITIONING_SAMPLE_RATE = 22_050
#: Shorter references give an unstable voice (XTTS itself refuses chunks under 0.33 s).
MIN_REFERENCE_S = 1.0
#: Beyond this range XTTS's latent interpolation becomes audibly smeared or clipped; the pipeline's
#: own SPEED_RATIO bounds (0.75-1.6 by default) sit well inside it.
SPEED_MIN, SPEED_MAX = 0.5, 2.0
#: livedub speaks ISO 639-1; XTTS names Mandarin by region.
_TO_XTTS = {"zh": "zh-cn"}


def xtts_language(code: str) -> str:
    code = code.lower()
    return _TO_XTTS.get(code, code)


def _iso_language(xtts_code: str) -> str:
    return {v: k for k, v in _TO_XTTS.items()}.get(xtts_code, xtts_code)


#: Languages whose XTTS text front-end needs a package coqui-tts does not install by default.
_FRONTEND_MODULES = {"ja": "cutlet", "zh": "pypinyin"}


def _frontend_available(language: str) -> bool:
    module = _FRONTEND_MODULES.get(language)
    return module is None or importlib.util.find_spec(module) is not None


def missing_files(model_dir: Path) -> list[str]:
    return [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]


def _cache_candidates() -> list[Path]:
    found: list[Path] = []
    try:
        from huggingface_hub import snapshot_download

        found.append(Path(snapshot_download(XTTS_HUB_REPO, local_files_only=True)))
    except Exception:
        pass
    data_home = os.environ.get("TTS_HOME") or os.environ.get("XDG_DATA_HOME")
    base = Path(data_home).expanduser() if data_home else Path.home() / ".local" / "share"
    found.append(base / "tts" / LEGACY_MODEL_DIR_NAME)
    return found


def find_model_dir(model_path: Path | str | None) -> Path:
    """The XTTS directory to load: ``model_path`` when given, else the first populated cache."""
    if model_path is not None:
        model_dir = Path(model_path)
        if not model_dir.is_dir():
            raise ModelLoadError(f"TTS_MODEL_PATH {model_dir} is not a directory")
        if missing := missing_files(model_dir):
            raise ModelLoadError(
                f"TTS_MODEL_PATH {model_dir} lacks {', '.join(missing)}: mount the XTTS v2 files "
                f"({', '.join(REQUIRED_FILES)}, optionally {SPEAKERS_FILE}) there"
            )
        return model_dir
    candidates = _cache_candidates()
    for candidate in candidates:
        if candidate.is_dir() and not missing_files(candidate):
            return candidate
    raise ModelLoadError(
        "no XTTS v2 model found: set TTS_MODEL_PATH to a directory holding "
        f"{', '.join(REQUIRED_FILES)} (+ {SPEAKERS_FILE}); looked in the cache at "
        + ", ".join(str(c) for c in candidates)
        + ". Weights are never downloaded at start-up (XTTS requires accepting the CPML licence)."
    )


def split_text(text: str, limit: int) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` characters, at sentence ends, then at words.

    XTTS's GPT accepts at most ~400 tokens and degrades past its per-language character limits;
    coqui's own splitter needs spaCy, which is not a dependency here.
    """
    text = " ".join(text.split())
    if len(text) <= limit:
        return [text] if text else []
    pieces: list[str] = []
    current = ""
    for sentence in re.split(r"(?<=[.!?;:\u3002\uff01\uff1f])\s+", text):
        words = sentence.split(" ")
        for word in words:
            while len(word) > limit:  # a "word" longer than the limit (URLs, CJK runs): hard-wrap
                if current:
                    pieces.append(current)
                    current = ""
                pieces.append(word[:limit])
                word = word[limit:]
            candidate = f"{current} {word}" if current else word
            if len(candidate) <= limit:
                current = candidate
            else:
                pieces.append(current)
                current = word
        if current and current[-1:] in ".!?;:\u3002\uff01\uff1f":
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return [p for p in pieces if p.strip()]


@dataclass(frozen=True, slots=True)
class Conditioning:
    """XTTS speaker conditioning: torch tensors on the model's device."""

    gpt_cond_latent: Any
    speaker_embedding: Any


@dataclass(slots=True)
class _SourceState:
    version: int
    computed_at: float
    conditioning: Conditioning


def read_reference(path: Path) -> tuple[Samples, int]:
    """Mono float32 samples of a reference file; ``INVALID_VOICE_PROFILE`` when it cannot be decoded."""
    if problem := reference_problem(path):
        raise invalid_voice(problem)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise invalid_voice(f"reference audio {path} cannot be decoded: {exc}") from exc
    audio = data.mean(axis=1).astype(np.float32)
    if len(audio) < MIN_REFERENCE_S * rate:
        raise invalid_voice(
            f"reference audio {path} is {len(audio) / rate:.2f} s long; at least {MIN_REFERENCE_S:.0f} s of "
            "speech "
            "is needed (6-20 s of clean speech works best)"
        )
    if not np.isfinite(audio).all():
        raise invalid_voice(f"reference audio {path} contains NaN or infinite samples")
    return audio, int(rate)


class XTTSSynthesizer(Synthesizer):
    """XTTS v2 behind the :class:`Synthesizer` interface. Construction loads the model (seconds)."""

    name = "xtts"
    #: Accepts ``reference=`` (a SourceReference) for the ``source`` voice.
    supports_source_voice = True

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        device: str = "cpu",
        default_speaker: str | None = None,
        default_reference: Path | str | None = None,
        cache_size: int = 64,
        source_refresh_s: float = 10.0,
        inference_options: Mapping[str, Any] | None = None,
        torch_threads: int | None = None,
    ) -> None:
        """Load XTTS v2.

        ``default_speaker`` names a built-in speaker of ``speakers_xtts.pth`` for requests without a
        profile (default: the file's first); ``default_reference`` is a WAV to clone instead, for
        model directories without a speakers file. ``inference_options`` override the model config's
        sampling settings (temperature, top_k, top_p, repetition_penalty, length_penalty, ...).
        """
        try:
            import torch
            from TTS.tts.configs.xtts_config import XttsConfig
            from TTS.tts.models.xtts import Xtts
        except ImportError as exc:
            raise ModelLoadError(
                f"TTS_ENGINE=xtts needs torch and coqui-tts (pip install 'livedub-runtime[production]'): {exc}"
            ) from exc
        self._torch = torch
        self.model_dir = find_model_dir(model_path)
        self.device = resolve_device(self._torch, device, "TTS_DEVICE")
        if torch_threads:
            torch.set_num_threads(torch_threads)
        started = time.perf_counter()
        config = XttsConfig()
        config.load_json(str(self.model_dir / "config.json"))
        model = Xtts(config)
        try:
            model.load_checkpoint(config, checkpoint_dir=str(self.model_dir), eval=True, use_deepspeed=False)
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                # coqui-tts rewrites an original (pickled-config) checkpoint in place on first load.
                raise ModelLoadError(
                    f"coqui-tts needs to convert {self.model_dir / 'model.pth'} once, in place, but the "
                    f"directory is read-only ({exc}). Run `python -m livedub.runtime.engines.tts_xtts "
                    "prepare DIR` where it is writable (image build, init container), then mount the result"
                ) from exc
            raise ModelLoadError(f"cannot load XTTS from {self.model_dir}: {exc}") from exc
        except Exception as exc:
            raise ModelLoadError(f"cannot load XTTS from {self.model_dir}: {exc}") from exc
        model.to(self.device)
        self._model = model
        self._config = config
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str, int, int], Conditioning] = OrderedDict()
        self._sources: OrderedDict[str, _SourceState] = OrderedDict()
        self._cache_size = max(1, cache_size)
        self.source_refresh_s = source_refresh_s
        self._warned_sources: set[str] = set()
        self.hits = 0
        self.misses = 0
        self.inference_options: dict[str, Any] = {
            "temperature": config.temperature,
            "length_penalty": config.length_penalty,
            "repetition_penalty": config.repetition_penalty,
            "top_k": config.top_k,
            "top_p": config.top_p,
            **(inference_options or {}),
        }
        manager = getattr(model, "speaker_manager", None)
        # Moved to the device once: a few hundred KB per speaker, reused by every request.
        self._speakers: dict[str, Conditioning] = {
            name: Conditioning(entry["gpt_cond_latent"].to(self.device), entry["speaker_embedding"].to(self.device))
            for name, entry in (manager.speakers.items() if manager is not None else ())
        }
        self._languages = frozenset(
            _iso_language(code) for code in config.languages if _frontend_available(_iso_language(code))
        )
        if dropped := sorted({_iso_language(c) for c in config.languages} - self._languages):
            log.warning(
                "XTTS languages without their text front-end installed are not offered",
                extra={"languages": dropped, "hint": "pip install 'coqui-tts[ja,zh]' (cutlet, pypinyin)"},
            )
        self.default_voice_name, self._default = self._load_default(default_speaker, default_reference)
        log.info(
            "XTTS loaded",
            extra={
                "model_dir": str(self.model_dir),
                "device": self.device,
                "seconds": round(time.perf_counter() - started, 2),
                "speakers": len(self._speakers),
                "default_voice": self.default_voice_name,
            },
        )

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> XTTSSynthesizer:
        """Build from ``Settings`` (``TTS_MODEL_PATH``, ``TTS_DEVICE``); ``overrides`` win."""
        kwargs: dict[str, Any] = {
            "model_path": getattr(settings, "tts_model_path", None),
            "device": getattr(settings, "tts_device", "cpu"),
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    # --- set-up helpers ---------------------------------------------------------------------------
    def _load_default(self, speaker: str | None, reference: Path | str | None) -> tuple[str, Conditioning]:
        if reference is not None:
            try:
                audio, rate = read_reference(Path(reference))
                with self._lock:
                    return f"reference:{Path(reference).name}", self._condition(audio, rate)
            except EngineError as exc:
                raise ModelLoadError(f"XTTS default reference: {exc.message}") from exc
        if speaker is not None:
            if speaker not in self._speakers:
                raise ModelLoadError(
                    f"default XTTS speaker {speaker!r} is not in {SPEAKERS_FILE} "
                    f"({len(self._speakers)} speakers, e.g. {', '.join(list(self._speakers)[:5])})"
                )
            return speaker, self._builtin(speaker)
        if self._speakers:
            first = next(iter(self._speakers))
            return first, self._builtin(first)
        raise ModelLoadError(
            f"XTTS has no default voice: {self.model_dir} has no {SPEAKERS_FILE}; mount it or pass default_reference"
        )

    def _builtin(self, name: str) -> Conditioning:
        return self._speakers[name]

    # --- public properties ----------------------------------------------------------------------
    @property
    def languages(self) -> frozenset[str]:
        return self._languages

    @property
    def speakers(self) -> list[str]:
        """Built-in speakers (``speakers_xtts.pth``), usable as a profile's ``speaker``."""
        return list(self._speakers)

    @property
    def sample_rate(self) -> int:
        return int(self._model.args.output_sample_rate)

    def cache_info(self) -> dict[str, int]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "profiles": len(self._cache),
            "sources": len(self._sources),
        }

    def forget_source(self, stream_key: str) -> None:
        """Drop a finished stream's cached source conditioning (the LRU would evict it anyway)."""
        with self._lock:
            self._sources.pop(stream_key, None)
            self._warned_sources.discard(stream_key)

    # --- validation ------------------------------------------------------------------------------
    def validate_voice(self, voice: VoiceProfile) -> None:
        """Cheap checks for ``stream:init`` (runs on the event loop): header read only, no inference."""
        if is_source_voice(voice):
            return
        if voice.language and voice.language.split("-")[0] not in self._languages:
            raise invalid_voice(f"voice profile '{voice.name}' speaks '{voice.language}', which XTTS cannot")
        if voice.reference_audio is not None:
            path = voice.reference_audio
            if problem := reference_problem(path):
                raise invalid_voice(f"voice profile '{voice.name}': {problem}")
            try:
                info = sf.info(str(path))
            except (sf.LibsndfileError, RuntimeError, OSError) as exc:
                raise invalid_voice(
                    f"voice profile '{voice.name}': reference audio {path} is unreadable: {exc}"
                ) from exc
            if info.frames < MIN_REFERENCE_S * info.samplerate:
                raise invalid_voice(
                    f"voice profile '{voice.name}': reference audio {path} is {info.duration:.2f} s; "
                    f"at least {MIN_REFERENCE_S:.0f} s is needed"
                )
        elif voice.speaker is not None and voice.speaker not in self._speakers:
            raise invalid_voice(f"voice profile '{voice.name}': XTTS has no built-in speaker {voice.speaker!r}")

    # --- synthesis ---------------------------------------------------------------------------------
    def synthesize(
        self,
        text: str,
        *,
        language: str,
        voice: VoiceProfile | None = None,
        speed: float = 1.0,
        reference: SourceReference | None = None,
    ) -> Speech:
        """Speak ``text``; ``reference`` carries the speaker's recent audio for the ``source`` voice."""
        xtts_lang = xtts_language(language)
        if _iso_language(xtts_lang) not in self._languages:
            raise EngineError(ErrorCode.UNSUPPORTED_LANGUAGE, f"XTTS cannot speak '{language}'", stage=Stage.TTS)
        if not np.isfinite(speed) or speed <= 0:
            raise EngineError(ErrorCode.INVALID_PAYLOAD, f"speed must be positive, got {speed}", stage=Stage.TTS)
        speed = float(min(max(speed, SPEED_MIN), SPEED_MAX))
        limit = self._model.tokenizer.char_limits.get(xtts_lang.split("-")[0], 250)
        pieces = split_text(text, limit)
        if not pieces:
            return Speech(np.zeros(0, dtype=np.float32), self.sample_rate)
        torch = self._torch
        with self._lock:
            try:
                conditioning = self._conditioning_for(voice, reference)
                wavs = [self._infer(piece, xtts_lang, conditioning, speed) for piece in pieces]
            except EngineError:
                raise
            except torch.cuda.OutOfMemoryError as exc:
                raise EngineError(ErrorCode.INTERNAL, f"XTTS ran out of memory: {exc}", retryable=True) from exc
            except Exception as exc:
                raise EngineError(ErrorCode.INTERNAL, f"XTTS synthesis failed: {type(exc).__name__}: {exc}") from exc
        audio = np.concatenate(wavs) if len(wavs) > 1 else wavs[0]
        audio = np.clip(np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0).astype(np.float32)
        return Speech(audio, self.sample_rate)

    def _infer(self, text: str, language: str, conditioning: Conditioning, speed: float) -> Samples:
        torch = self._torch

        def run(speed: float) -> Samples:
            with torch.inference_mode():
                out = self._model.inference(
                    text,
                    language,
                    conditioning.gpt_cond_latent,
                    conditioning.speaker_embedding,
                    speed=speed,
                    enable_text_splitting=False,
                    **self.inference_options,
                )
            return np.asarray(out["wav"], dtype=np.float32).reshape(-1)

        try:
            return run(speed)
        except RuntimeError as exc:
            # XTTS applies speed by interpolating the GPT latents; when the GPT stops after one or two
            # codes, speed > 1 interpolates them to zero frames and torch refuses. Say it at natural
            # speed instead: the pipeline's time-stretch still fits the duration.
            if speed > 1.0 and "sizes should be greater than 0" in str(exc):
                log.debug("XTTS output too short to speed up; natural speed used", extra={"speed": speed})
                return run(1.0)
            raise

    # --- conditioning (call with self._lock held) --------------------------------------------------
    def _conditioning_for(self, voice: VoiceProfile | None, reference: SourceReference | None) -> Conditioning:
        if voice is None:
            return self._default
        if is_source_voice(voice):
            return self._source_conditioning(reference)
        if voice.reference_audio is not None:
            return self._profile_conditioning(voice)
        if voice.speaker is not None:
            if voice.speaker not in self._speakers:
                raise invalid_voice(f"voice profile '{voice.name}': XTTS has no built-in speaker {voice.speaker!r}")
            return self._builtin(voice.speaker)
        return self._default  # a profile without reference audio (e.g. for embedded engines only)

    def _profile_conditioning(self, voice: VoiceProfile) -> Conditioning:
        path = voice.reference_audio
        assert path is not None
        try:
            st = path.stat()
        except OSError as exc:
            raise invalid_voice(f"voice profile '{voice.name}': reference audio {path} is gone: {exc}") from exc
        key = (voice.name, str(path), st.st_mtime_ns, st.st_size)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return cached
        self.misses += 1
        audio, rate = read_reference(path)
        conditioning = self._condition(audio, rate, what=f"voice profile '{voice.name}'")
        # A changed file supersedes the old entry of the same profile instead of waiting for eviction.
        for old in [k for k in self._cache if k[0] == voice.name]:
            del self._cache[old]
        self._cache[key] = conditioning
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return conditioning

    def _source_conditioning(self, reference: SourceReference | None) -> Conditioning:
        if reference is None:
            log.warning("'source' voice requested without source audio: default voice used")
            return self._default
        state = self._sources.get(reference.stream_key)
        now = time.monotonic()
        if state is not None:
            self._sources.move_to_end(reference.stream_key)
            fresh = state.version == reference.version or now - state.computed_at < self.source_refresh_s
            if fresh:
                self.hits += 1
                return state.conditioning
        if reference.duration_s < MIN_REFERENCE_S:
            if state is not None:
                return state.conditioning
            if reference.stream_key not in self._warned_sources:
                self._warned_sources.add(reference.stream_key)
                log.info(
                    "source voice: not enough speech yet, default voice until there is",
                    extra={"stream_id": reference.stream_key, "seconds": round(reference.duration_s, 2)},
                )
            return self._default
        self.misses += 1
        conditioning = self._condition(
            np.asarray(reference.audio, dtype=np.float32),
            reference.sample_rate,
            what=f"source audio of '{reference.stream_key}'",
        )
        self._sources[reference.stream_key] = _SourceState(reference.version, now, conditioning)
        while len(self._sources) > self._cache_size:
            self._sources.popitem(last=False)
        return conditioning

    def _condition(self, audio: Samples, rate: int, what: str = "reference audio") -> Conditioning:
        """Compute XTTS conditioning from mono samples, with the model config's cloning settings."""
        torch = self._torch
        cfg = self._config
        wav = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0)
        try:
            with torch.inference_mode():
                if rate != CONDITIONING_SAMPLE_RATE:
                    import torchaudio

                    wav = torchaudio.functional.resample(wav, rate, CONDITIONING_SAMPLE_RATE)
                wav = wav[:, : CONDITIONING_SAMPLE_RATE * int(cfg.max_ref_len)].clamp(-1.0, 1.0).to(self.device)
                if cfg.sound_norm_refs:
                    wav = wav / wav.abs().max().clamp(min=1e-8) * 0.75
                speaker_embedding = self._model.get_speaker_embedding(wav, CONDITIONING_SAMPLE_RATE)
                gpt_cond_latent = self._model.get_gpt_cond_latents(
                    wav,
                    CONDITIONING_SAMPLE_RATE,
                    length=int(cfg.gpt_cond_len),
                    chunk_length=int(cfg.gpt_cond_chunk_len),
                )
        except RuntimeError as exc:
            raise invalid_voice(f"{what} cannot be used for cloning: {exc}") from exc
        return Conditioning(gpt_cond_latent, speaker_embedding)


def prepare(model_dir: Path) -> None:
    """Load once on CPU so coqui-tts converts an original checkpoint in place (needs write access)."""
    XTTSSynthesizer(model_dir, device="cpu")


if __name__ == "__main__":  # python -m livedub.runtime.engines.tts_xtts prepare DIR
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "prepare":
        sys.exit("usage: python -m livedub.runtime.engines.tts_xtts prepare MODEL_DIR")
    logging.basicConfig(level=logging.INFO)
    prepare(Path(sys.argv[2]))
    print(f"{sys.argv[2]}: XTTS checkpoint loads; ready to mount read-only")
