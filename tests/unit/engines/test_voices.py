"""voices.json: the guide's format, per-profile errors, hot reload (including a ConfigMap-style symlink
swap), relative reference paths, the reserved ``source`` voice, and the source-audio buffer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from livedub.runtime.engines.base import VoiceProfile
from livedub.runtime.engines.voices import (
    SOURCE_VOICE,
    SourceAudioBuffer,
    VoiceRegistry,
    VoicesFileError,
    is_source_voice,
    load_voices,
)
from livedub.runtime.errors import EngineError, ErrorCode, ModelLoadError, Stage


def _wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + b"\0" * 64)  # the registry only stats it; decoding is the engine's job
    return path


def _write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def _bump(path: Path) -> None:
    """Make sure the next write is seen even on file systems with coarse mtimes."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def _invalid(registry: VoiceRegistry, name: str) -> EngineError:
    with pytest.raises(EngineError) as info:
        registry.get(name)
    err = info.value
    assert err.code is ErrorCode.INVALID_VOICE_PROFILE and err.retryable is False and err.stage is Stage.SESSION
    return err


def test_guide_format_loads_into_voice_profiles(tmp_path: Path) -> None:
    ref = _wav(tmp_path / "refs" / "es_m.wav")
    path = _write(
        tmp_path / "voices.json",
        {
            "spanish_male_1": {"language": "es", "gender": "male", "reference_audio": str(ref)},
            "french_female_1": {"language": "fr", "gender": "female"},
        },
    )
    registry = VoiceRegistry(path)
    assert registry.get("spanish_male_1") == VoiceProfile(
        name="spanish_male_1", language="es", gender="male", reference_audio=ref
    )
    french = registry.get("french_female_1")
    assert french.reference_audio is None and french.gender == "female"
    assert registry.names() == ["french_female_1", "spanish_male_1"]
    assert len(registry) == 2 and "spanish_male_1" in registry and "source" in registry
    assert [p.name for p in registry] == ["french_female_1", "spanish_male_1"]


def test_normalisation_and_extensions(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "voices.json",
        {"br": {"language": " PT_BR ", "gender": "Female", "speaker": "af_heart", "description": "x"}},
    )
    voice = VoiceRegistry(path).get("br")
    assert (voice.language, voice.gender, voice.speaker) == ("pt-br", "female", "af_heart")


def test_unknown_keys_are_tolerated_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path / "voices.json", {"a": {"language": "es", "pitch": 3, "style": "calm"}})
    snapshot = load_voices(path)
    assert snapshot.warnings == ("profile 'a': unknown keys ignored: pitch, style",)
    with caplog.at_level("WARNING"):
        assert VoiceRegistry(path).get("a").language == "es"
    assert "unknown keys ignored" in caplog.text


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"gender": "male"}, "language: Field required"),
        ({"language": "spanish"}, "is not a language code"),
        ({"language": 7}, "language"),
        ({"language": "es", "gender": "robot"}, "gender"),
        ({"language": "es", "reference_audio": ""}, "reference_audio"),
        ("es", "must be an object"),
        ({"language": "es", "reference_audio": "/nowhere/ref.wav"}, "does not exist"),
    ],
)
def test_a_bad_profile_is_invalid_with_its_reason_and_the_others_still_work(
    tmp_path: Path, entry: Any, reason: str
) -> None:
    path = _write(tmp_path / "voices.json", {"bad": entry, "good": {"language": "es", "gender": "male"}})
    registry = VoiceRegistry(path)
    err = _invalid(registry, "bad")
    assert "'bad' is invalid" in err.message and reason in err.message
    assert "bad" in registry.problems and "bad" not in registry.names()
    assert registry.get("good").language == "es"


def test_reference_that_is_a_directory_or_empty(tmp_path: Path) -> None:
    (tmp_path / "dir.wav").mkdir()
    (tmp_path / "empty.wav").write_bytes(b"")
    path = _write(
        tmp_path / "voices.json",
        {
            "d": {"language": "es", "reference_audio": "dir.wav"},
            "e": {"language": "es", "reference_audio": "empty.wav"},
        },
    )
    registry = VoiceRegistry(path)
    assert "is not a file" in _invalid(registry, "d").message
    assert "is empty" in _invalid(registry, "e").message


def test_duplicate_and_reserved_names(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "voices.json",
        '{"dup": {"language": "es"}, "dup": {"language": "fr"}, "source": {"language": "es"}, "": {"language": "es"}}',
    )
    registry = VoiceRegistry(path)
    assert "more than once" in _invalid(registry, "dup").message
    assert "reserved" in registry.problems["source"]
    assert "must not be empty" in registry.problems[""]
    assert registry.get("source") is SOURCE_VOICE  # the file cannot shadow the reserved voice


def test_unknown_profile_is_invalid_voice_profile_with_suggestions(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "voices.json",
        {"spanish_male_1": {"language": "es"}, "french_female_1": {"language": "fr"}},
    )
    registry = VoiceRegistry(path)
    err = _invalid(registry, "spanish_male_2")
    assert "not found" in err.message and "did you mean 'spanish_male_1'" in err.message
    err = _invalid(registry, "zzz")
    assert "known: french_female_1, spanish_male_1" in err.message


def test_relative_reference_resolves_against_the_files_directory_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    ref = _wav(config / "refs" / "anchor.wav")
    path = _write(config / "voices.json", {"anchor": {"language": "es", "reference_audio": "refs/anchor.wav"}})
    monkeypatch.chdir(tmp_path)
    registry = VoiceRegistry(Path("config/voices.json"))  # a relative VOICES_FILE, as in the default
    voice = registry.get("anchor")
    assert voice.reference_audio == ref and voice.reference_audio.is_absolute()
    assert path.exists()


def test_source_is_reserved_and_needs_no_file(tmp_path: Path) -> None:
    registry = VoiceRegistry(tmp_path / "absent.json")
    voice = registry.get("source")
    assert voice is SOURCE_VOICE and is_source_voice(voice) and voice.language == ""
    assert not is_source_voice(None) and not is_source_voice(VoiceProfile(name="x", language="es"))


def test_missing_file_is_an_empty_registry_until_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "voices.json"
    registry = VoiceRegistry(path)
    assert registry.names() == [] and registry.last_error is None
    assert "does not exist" in _invalid(registry, "a").message
    _write(path, {"a": {"language": "es"}})
    assert registry.get("a").language == "es"
    path.unlink()
    assert "does not exist" in _invalid(registry, "a").message


def test_malformed_file_fails_fast_at_start_up(tmp_path: Path) -> None:
    path = _write(tmp_path / "voices.json", "{not json")
    with pytest.raises(ModelLoadError, match=r"VOICES_FILE .* is not valid JSON: .* line 1 column 2"):
        VoiceRegistry(path)
    _write(path, [1, 2])
    with pytest.raises(ModelLoadError, match="JSON object of profiles, not list"):
        VoiceRegistry(path)
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ModelLoadError, match="not UTF-8"):
        VoiceRegistry(path)
    assert VoiceRegistry(path, strict=False).last_error is not None


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "voices.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"a": {"language": "es"}}).encode())
    assert VoiceRegistry(path).get("a").language == "es"


def test_reload_on_change(tmp_path: Path) -> None:
    path = _write(tmp_path / "voices.json", {"a": {"language": "es"}})
    registry = VoiceRegistry(path)
    generation = registry.generation
    assert not registry.reload_if_changed()  # unchanged file: one stat, no parse
    _write(path, {"a": {"language": "fr"}, "b": {"language": "de"}})
    _bump(path)
    assert registry.get("a").language == "fr" and registry.get("b").language == "de"
    assert registry.generation == generation + 1
    _write(path, {"b": {"language": "de"}})
    _bump(path)
    assert "not found" in _invalid(registry, "a").message


def test_same_size_same_mtime_rewrite_is_seen_through_the_inode(tmp_path: Path) -> None:
    path = _write(tmp_path / "voices.json", {"a": {"language": "es"}})
    registry = VoiceRegistry(path)
    st = path.stat()
    replacement = _write(tmp_path / "new.json", {"a": {"language": "fr"}})  # same length on purpose
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert replacement.stat().st_size == st.st_size
    os.replace(replacement, path)  # atomic rename: what editors and kubectl cp do
    assert registry.get("a").language == "fr"


def test_broken_rewrite_keeps_previous_profiles(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path / "voices.json", {"a": {"language": "es"}})
    registry = VoiceRegistry(path)
    _write(path, '{"a": {"language": "fr"')  # a half-written edit
    _bump(path)
    with caplog.at_level("ERROR"):
        assert registry.get("a").language == "es"
        assert registry.get("a").language == "es"
    assert registry.last_error is not None and "not valid JSON" in registry.last_error
    assert caplog.text.count("voices file rejected") == 1  # logged once per change, not per lookup
    _write(path, {"a": {"language": "fr"}})
    _bump(path)
    assert registry.get("a").language == "fr" and registry.last_error is None


def test_configmap_symlink_swap(tmp_path: Path) -> None:
    """Kubernetes projects a ConfigMap as ``voices.json -> ..data/voices.json`` and ``..data -> ..<ts>``;
    an update writes a new timestamped directory and renames ``..data`` over the old link."""
    mount = tmp_path / "voices"
    mount.mkdir()

    def publish(stamp: str, doc: dict[str, Any]) -> None:
        target = mount / f"..{stamp}"
        target.mkdir()
        (target / "voices.json").write_text(json.dumps(doc))
        _wav(target / "anchor.wav")
        tmp_link = mount / "..data_tmp"
        tmp_link.symlink_to(target.name)
        os.replace(tmp_link, mount / "..data")

    publish("2026_11_25_01", {"anchor": {"language": "es", "reference_audio": "anchor.wav"}})
    (mount / "voices.json").symlink_to("..data/voices.json")
    (mount / "anchor.wav").symlink_to("..data/anchor.wav")
    registry = VoiceRegistry(mount / "voices.json")
    first = registry.get("anchor")
    # Resolved against the mount directory, not the timestamped one the next swap deletes.
    assert first.reference_audio == mount / "anchor.wav"

    publish("2026_11_25_02", {"anchor": {"language": "fr", "reference_audio": "anchor.wav"}})
    for old in (mount / "..2026_11_25_01").iterdir():
        old.unlink()
    (mount / "..2026_11_25_01").rmdir()
    second = registry.get("anchor")
    assert second.language == "fr" and second.reference_audio == mount / "anchor.wav"


def test_reference_checked_on_every_lookup(tmp_path: Path) -> None:
    ref = tmp_path / "late.wav"
    path = _write(tmp_path / "voices.json", {"late": {"language": "es", "reference_audio": str(ref)}})
    registry = VoiceRegistry(path)
    assert "does not exist" in _invalid(registry, "late").message
    _wav(ref)  # an init container finished fetching it; the voices file did not change
    assert registry.get("late").reference_audio == ref
    ref.unlink()
    assert "does not exist" in _invalid(registry, "late").message


def test_lookup_cost_is_a_stat(tmp_path: Path) -> None:
    path = _write(tmp_path / "voices.json", {f"v{i}": {"language": "es"} for i in range(200)})
    registry = VoiceRegistry(path)
    import time

    started = time.perf_counter()
    for _ in range(2000):
        registry.get("v7")
    per_call = (time.perf_counter() - started) / 2000
    assert per_call < 0.001  # generous: ~10 µs here; it runs once per stream:init


def test_module_does_not_import_torch() -> None:
    code = (
        "import sys; import livedub.runtime.engines.voices\n"
        "bad = [m for m in ('torch', 'TTS', 'torchaudio') if m in sys.modules]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_voices_file_error_is_a_value_error() -> None:
    assert issubclass(VoicesFileError, ValueError)


# --- source audio buffer -----------------------------------------------------------------------------


def test_source_buffer_keeps_the_last_seconds_of_speech() -> None:
    buf = SourceAudioBuffer("s1", 16000, max_seconds=2.0)
    assert buf.reference() is None
    tone = (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    assert buf.append(tone) and buf.version == 1
    assert not buf.append(np.zeros(16000, dtype=np.float32))  # silence does not dilute the reference
    assert buf.version == 1
    buf.append(tone * 2)
    buf.append(tone * 3)
    ref = buf.reference()
    assert ref is not None and ref.stream_key == "s1" and ref.version == 3
    assert len(ref.audio) == 32000 and ref.duration_s == 2.0 and ref.audio.dtype == np.float32
    assert np.allclose(ref.audio[-16000:], tone * 3)  # newest audio kept
    before = ref.audio.copy()
    buf.append(tone)
    assert np.array_equal(ref.audio, before)  # an issued reference never changes under the engine


def test_source_buffer_validates_rates() -> None:
    buf = SourceAudioBuffer("s1", 16000)
    with pytest.raises(ValueError, match="16000 Hz"):
        buf.append(np.ones(10, dtype=np.float32), 24000)
    with pytest.raises(ValueError):
        SourceAudioBuffer("s1", 0)


VOICES_LOGGER = "livedub.runtime.engines.voices"


@pytest.mark.parametrize(("expected", "level"), [(False, "INFO"), (True, "WARNING")])
def test_a_missing_file_warns_only_when_someone_asked_for_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, expected: bool, level: str
) -> None:
    """The default config/voices.json is optional: a new user's first start must not print a warning."""
    with caplog.at_level("INFO", logger=VOICES_LOGGER):
        registry = VoiceRegistry(tmp_path / "voices.json", expected=expected)
    assert len(registry) == 0
    assert [r.levelname for r in caplog.records if r.name == VOICES_LOGGER] == [level]
    caplog.clear()
    path = _write(tmp_path / "voices.json", {"a": {"language": "es"}})
    assert registry.reload_if_changed() and registry.get("a").language == "es"
    path.unlink()
    caplog.clear()  # the load above logs its profiles at INFO where the root level lets it through
    with caplog.at_level("INFO", logger=VOICES_LOGGER):
        assert registry.reload_if_changed() and len(registry) == 0
    # a file that was there and went away
    assert [r.levelname for r in caplog.records if r.name == VOICES_LOGGER] == ["WARNING"]
