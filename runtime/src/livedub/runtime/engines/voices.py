"""Voice profiles: ``config/voices.json`` (the quick-start guide's format) and the reserved ``source`` voice.

The file maps a profile name to its language, gender and, for cloning engines, a reference recording::

    {"spanish_male_1": {"language": "es", "gender": "male", "reference_audio": "/path/to/ref.wav"}}

Design decisions, and why:

* **One bad profile never takes the others down.** A profile with a wrong field or a missing reference
  file is kept as *invalid, with its reason*; asking for it raises ``INVALID_VOICE_PROFILE`` carrying that
  reason, while every other profile keeps working. Only a file that is not a JSON object at all is a
  file-level error: at start-up it stops the process (:class:`~livedub.runtime.errors.ModelLoadError`,
  fail fast), on a later reload the previous profiles stay in force and the error is logged.
* **Unknown keys are tolerated** (and logged once per load): the operator and people add fields such as
  ``description``; refusing them would turn a harmless addition into an outage.
* **Hot reload is a stat per lookup.** :meth:`VoiceRegistry.get` compares the file's identity
  ``(inode, device, mtime_ns, size)`` with the last load, following symlinks. A Kubernetes ConfigMap
  volume swaps a ``..data`` symlink atomically: the followed inode changes even when size and mtime
  would not, so the swap is seen on the next ``stream:init``. No thread, no inotify.
* **Relative reference paths** resolve against the directory *as named* (``/etc/livedub/voices``),
  never against the symlink target (``..2026_11_25_…``), which the next ConfigMap swap deletes.
* **Reference files are checked on every lookup** (one ``stat``), so a reference that appears after the
  voices file (an init container still fetching it) becomes usable without touching the file.
* ``source`` is reserved: it means "clone the live speaker from the stream's own recent audio". It is
  never read from the file; :meth:`VoiceRegistry.get` returns :data:`SOURCE_VOICE` for it, and cloning
  engines receive the audio as a :class:`SourceReference` (see :class:`SourceAudioBuffer`).

Pure Python, pydantic and numpy only: this module must import where torch is not installed.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from livedub.runtime.engines.base import Samples, VoiceProfile
from livedub.runtime.errors import EngineError, ErrorCode, ModelLoadError, Stage

log = logging.getLogger(__name__)

#: The reserved profile name: clone the live speaker.
SOURCE_VOICE_NAME = "source"
#: What :meth:`VoiceRegistry.get` returns for ``"source"``. Its language is empty on purpose: the
#: cloned voice speaks whatever the stream targets (the service skips the language check for it).
SOURCE_VOICE = VoiceProfile(name=SOURCE_VOICE_NAME, language="")

#: Same bound as ``stream:init``'s ``voice_profile`` field.
MAX_NAME_LENGTH = 128
_KNOWN_KEYS = frozenset({"language", "gender", "reference_audio", "speaker", "description"})


def is_source_voice(voice: VoiceProfile | None) -> bool:
    return voice is not None and voice.name == SOURCE_VOICE_NAME


class VoiceEntry(BaseModel):
    """One profile as written in the file (validation only; the runtime uses ``VoiceProfile``)."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    language: str = Field(description="ISO 639-1/-3 code, optionally with a region: es, pt-br, zh-cn.")
    gender: Literal["male", "female", "neutral"] | None = None
    reference_audio: str | None = Field(None, min_length=1, description="WAV for cloning engines.")
    #: Extension: a built-in speaker of the engine (a Kokoro voice, an XTTS studio speaker).
    speaker: str | None = Field(None, min_length=1)
    description: str | None = None

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower().replace("_", "-")
            if not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]{2,8})?", value):
                raise ValueError(f"'{value}' is not a language code such as 'es' or 'pt-br'")
        return value

    @field_validator("gender", mode="before")
    @classmethod
    def _gender(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class VoicesSnapshot:
    """The result of reading the file once: usable profiles and, for the others, why not."""

    profiles: Mapping[str, VoiceProfile] = field(default_factory=dict)
    problems: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


class VoicesFileError(ValueError):
    """The file as a whole cannot be used (not JSON, not an object)."""


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "profile"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # json.loads would silently keep the last one; a duplicated profile is almost always a
            # copy-paste mistake worth refusing loudly.
            out[key] = _Duplicate()
        else:
            out[key] = value
    return out


class _Duplicate:
    pass


def reference_problem(path: Path) -> str | None:
    """Why ``path`` cannot serve as reference audio (cheap: one stat), or None."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return f"reference audio {path} does not exist"
    except OSError as exc:
        return f"reference audio {path} cannot be read: {exc.strerror or exc}"
    if not os.path.isfile(path):
        return f"reference audio {path} is not a file"
    if st.st_size == 0:
        return f"reference audio {path} is empty"
    if not os.access(path, os.R_OK):
        return f"reference audio {path} is not readable"
    return None


def parse_voices(document: Any, base_dir: Path) -> VoicesSnapshot:
    """Validate a decoded voices document. ``base_dir`` anchors relative ``reference_audio`` paths."""
    if not isinstance(document, dict):
        kind = type(document).__name__
        raise VoicesFileError(f"the voices file must hold a JSON object of profiles, not {kind}")
    profiles: dict[str, VoiceProfile] = {}
    problems: dict[str, str] = {}
    warnings: list[str] = []
    for name, raw in document.items():
        if not name.strip():
            problems[name] = "a profile name must not be empty"
            continue
        if len(name) > MAX_NAME_LENGTH:
            problems[name] = f"a profile name must be at most {MAX_NAME_LENGTH} characters"
            continue
        if name == SOURCE_VOICE_NAME:
            problems[name] = f"'{SOURCE_VOICE_NAME}' is reserved (clones the live speaker); not definable"
            continue
        if isinstance(raw, _Duplicate):
            problems[name] = "profile defined more than once in the file"
            continue
        if not isinstance(raw, dict):
            kind = type(raw).__name__
            problems[name] = f"a profile must be an object with language/gender/reference_audio, not {kind}"
            continue
        try:
            entry = VoiceEntry.model_validate(raw)
        except ValidationError as exc:
            problems[name] = _explain(exc)
            continue
        unknown = sorted(set(raw) - _KNOWN_KEYS)
        if unknown:
            warnings.append(f"profile '{name}': unknown keys ignored: {', '.join(unknown)}")
        reference: Path | None = None
        if entry.reference_audio:
            reference = Path(os.path.expanduser(entry.reference_audio))
            if not reference.is_absolute():
                # abspath, not resolve(): keep the ConfigMap's stable symlinked directory (see module doc).
                reference = Path(os.path.abspath(base_dir / reference))
        profile = VoiceProfile(
            name=name,
            language=entry.language,
            gender=entry.gender,
            reference_audio=reference,
            speaker=entry.speaker,
        )
        if reference is not None and (problem := reference_problem(reference)):
            problems[name] = problem
        profiles[name] = profile
    return VoicesSnapshot(profiles=profiles, problems=problems, warnings=tuple(warnings))


def load_voices(path: Path) -> VoicesSnapshot:
    """Read and validate a voices file. Raises :class:`VoicesFileError` or ``OSError``."""
    data = path.read_bytes()
    try:
        document = json.loads(data.decode("utf-8-sig"), object_pairs_hook=_reject_duplicates)
    except UnicodeDecodeError as exc:
        raise VoicesFileError(f"{path} is not UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise VoicesFileError(f"{path} is not valid JSON: {exc.msg} at {where}") from exc
    return parse_voices(document, Path(os.path.abspath(path)).parent)


def _stamp(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)  # follows symlinks: a ConfigMap swap changes the inode
    except OSError:
        return None
    return (st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size)


def invalid_voice(message: str) -> EngineError:
    return EngineError(ErrorCode.INVALID_VOICE_PROFILE, message, stage=Stage.SESSION)


class VoiceRegistry:
    """The profiles of one voices file, reloaded when the file changes.

    Thread-safe: lookups read an immutable snapshot; a reload swaps it under a lock. A missing file is
    an empty registry (the default ``config/voices.json`` need not exist), picked up once it appears.
    """

    def __init__(self, path: Path | str, *, strict: bool = True, expected: bool = True) -> None:
        """``strict``: a malformed file at construction raises ``ModelLoadError`` (fail fast at start-up).
        ``expected``: whether someone asked for this file (``VOICES_FILE`` set). The default path is
        optional, so its absence at start is an INFO line, not a warning a new user reads as a fault."""
        self.path = Path(path)
        self._expected = expected
        self._lock = threading.Lock()
        self._snapshot = VoicesSnapshot()
        self._stamp: tuple[int, int, int, int] | None = None
        self._loaded_once = False
        #: Why the last load attempt failed (the previous profiles stay in force), or None.
        self.last_error: str | None = None
        #: Incremented on every successful (re)load; lets callers and tests see a reload happened.
        self.generation = 0
        self.reload_if_changed()
        if strict and self.last_error is not None:
            raise ModelLoadError(f"VOICES_FILE {self.path}: {self.last_error}")

    # --- loading -------------------------------------------------------------------------------
    def reload_if_changed(self) -> bool:
        """Reload when the file's identity changed since the last look. True when profiles were replaced."""
        stamp = _stamp(self.path)
        if stamp == self._stamp and self._loaded_once:
            return False
        with self._lock:
            stamp = _stamp(self.path)
            if stamp == self._stamp and self._loaded_once:
                return False
            return self._load(stamp)

    def reload(self) -> bool:
        """Force a reload, whatever the file's stamp."""
        with self._lock:
            return self._load(_stamp(self.path))

    def _load(self, stamp: tuple[int, int, int, int] | None) -> bool:
        self._loaded_once = True
        if stamp is None:
            if self._stamp is not None or (self.generation == 0 and self._expected):
                log.warning("voices file not found: no voice profiles", extra={"path": str(self.path)})
            elif self.generation == 0:
                log.info("no voices file: the embedded voices only", extra={"path": str(self.path)})
            self._stamp = None
            self._snapshot = VoicesSnapshot()
            self.last_error = None
            self.generation += 1
            return True
        try:
            snapshot = load_voices(self.path)
        except (OSError, VoicesFileError) as exc:
            # Keep serving the previous profiles; remember the stamp so a broken file is logged once,
            # not on every stream:init. The next change to the file triggers another attempt.
            self._stamp = stamp
            self.last_error = str(exc)
            log.error(
                "voices file rejected, keeping previous profiles",
                extra={"path": str(self.path), "error": str(exc)},
            )
            return False
        self._stamp = stamp
        self._snapshot = snapshot
        self.last_error = None
        self.generation += 1
        for warning in snapshot.warnings:
            log.warning(warning, extra={"path": str(self.path)})
        for name, problem in snapshot.problems.items():
            log.warning("voice profile unusable", extra={"profile": name, "reason": problem})
        log.info(
            "voice profiles loaded",
            extra={
                "path": str(self.path),
                "profiles": len(snapshot.profiles),
                "invalid": len(snapshot.problems),
            },
        )
        return True

    # --- lookups -------------------------------------------------------------------------------
    def get(self, name: str) -> VoiceProfile:
        """The profile called ``name``; raises ``EngineError(INVALID_VOICE_PROFILE)`` when unusable."""
        if name == SOURCE_VOICE_NAME:
            return SOURCE_VOICE
        self.reload_if_changed()
        snapshot = self._snapshot
        profile = snapshot.profiles.get(name)
        if profile is None:
            if name in snapshot.problems:
                raise invalid_voice(f"voice profile '{name}' is invalid: {snapshot.problems[name]}")
            raise invalid_voice(self._not_found(name, snapshot))
        if profile.reference_audio is not None:
            # Re-checked on every lookup: the file may have appeared, or vanished, since the load.
            problem = reference_problem(profile.reference_audio)
            if problem:
                raise invalid_voice(f"voice profile '{name}' is invalid: {problem}")
        return profile

    def _not_found(self, name: str, snapshot: VoicesSnapshot) -> str:
        where = f"voices file {self.path}"
        if self._stamp is None:
            where += " (which does not exist)"
        message = f"voice profile '{name}' not found in {where}"
        close = difflib.get_close_matches(name, list(snapshot.profiles), n=3)
        if close:
            message += f"; did you mean {', '.join(repr(c) for c in close)}?"
        elif snapshot.profiles:
            known = sorted(snapshot.profiles)
            message += f"; known: {', '.join(known[:10])}{', …' if len(known) > 10 else ''}"
        return message + f" (or '{SOURCE_VOICE_NAME}' to clone the speaker)"

    def names(self) -> list[str]:
        """Names of the profiles that were usable at the last load, sorted."""
        self.reload_if_changed()
        snapshot = self._snapshot
        return sorted(n for n in snapshot.profiles if n not in snapshot.problems)

    @property
    def problems(self) -> dict[str, str]:
        """Unusable profiles at the last load, with the reason."""
        return dict(self._snapshot.problems)

    def __contains__(self, name: object) -> bool:
        return name == SOURCE_VOICE_NAME or (isinstance(name, str) and name in self.names())

    def __iter__(self) -> Iterator[VoiceProfile]:
        snapshot = self._snapshot
        return iter([snapshot.profiles[n] for n in sorted(snapshot.profiles) if n not in snapshot.problems])

    def __len__(self) -> int:
        return len(self.names())


# --- the "source" voice: recent audio of the live speaker ------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceReference:
    """Recent audio of a stream's speaker, for cloning engines asked for the ``source`` voice.

    ``stream_key`` identifies the speaker (engines cache conditioning per key); ``version`` changes
    whenever the audio does, so an engine can tell that its cached conditioning is stale without
    comparing samples.
    """

    stream_key: str
    audio: Samples
    sample_rate: int
    version: int

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate if self.sample_rate else 0.0


class SourceAudioBuffer:
    """The last ``max_seconds`` of a stream's source speech, kept per stream by the caller.

    Append each fragment's decoded audio (before or while it is dubbed); :meth:`reference` returns
    what a cloning engine needs. Silence-only fragments are skipped so pauses do not dilute the
    reference. Not thread-safe on purpose: one stream's fragments are appended from one place.
    """

    def __init__(
        self, stream_key: str, sample_rate: int, *, max_seconds: float = 12.0, silence_rms: float = 1e-3
    ) -> None:
        if sample_rate <= 0 or max_seconds <= 0:
            raise ValueError("sample_rate and max_seconds must be positive")
        self.stream_key = stream_key
        self.sample_rate = sample_rate
        self.max_samples = int(max_seconds * sample_rate)
        self.silence_rms = silence_rms
        self._audio: Samples = np.zeros(0, dtype=np.float32)
        self.version = 0

    def append(self, audio: Samples, sample_rate: int | None = None) -> bool:
        """Add ``audio`` (mono float32). Returns False when it was skipped as silence."""
        if sample_rate is not None and sample_rate != self.sample_rate:
            raise ValueError(f"buffer holds {self.sample_rate} Hz audio, got {sample_rate} Hz")
        chunk = np.asarray(audio, dtype=np.float32).reshape(-1)
        if chunk.size == 0 or float(np.sqrt(np.mean(np.square(chunk)))) < self.silence_rms:
            return False
        joined = np.concatenate([self._audio, chunk])
        self._audio = joined[-self.max_samples :].copy()
        self.version += 1
        return True

    @property
    def duration_s(self) -> float:
        return len(self._audio) / self.sample_rate

    def reference(self) -> SourceReference | None:
        if self._audio.size == 0:
            return None
        return SourceReference(self.stream_key, self._audio, self.sample_rate, self.version)
