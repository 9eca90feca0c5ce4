"""XTTS v2 backend against a tiny XTTS built from config: the real loading and synthesis code, noise out.

No XTTS weights can be fetched here, so the module-scoped fixture builds one (tests/support/xtts_tiny.py,
shared with bench/gpu_xtts.py): an ``XttsConfig`` with a one-layer, 32-wide GPT, a character-level
``vocab.json`` made with ``tokenizers``, random weights saved as ``model.pth`` and a ``speakers_xtts.pth``
whose two speakers are conditioned on synthetic audio.
Everything downstream of that directory is the production path: ``find_model_dir``, coqui's
``load_checkpoint``, conditioning, the LRU, ``inference`` with speed and language, output format.

Tests that need torch skip with the reason when torch or coqui-tts is not importable (the main venv has
neither); ``make test`` runs this module again in ``.venv-production``, built from the production install
definition, where a missing engine fails instead of skipping. The pure helpers run everywhere.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from livedub.runtime.engines.base import VoiceProfile
from livedub.runtime.engines.tts_xtts import (
    REQUIRED_FILES,
    find_model_dir,
    split_text,
    xtts_language,
)
from livedub.runtime.engines.voices import SOURCE_VOICE, SourceAudioBuffer, SourceReference
from livedub.runtime.errors import EngineError, ErrorCode, ModelLoadError
from support.concurrency import run_in_threads
from support.production import require
from support.xtts_tiny import SPEAKERS, build_tiny_xtts, speechlike

# --- pure helpers: no torch needed ------------------------------------------------------------------


def test_module_imports_without_torch_and_fails_clearly_when_used(tmp_path: Path) -> None:
    for name in REQUIRED_FILES:
        (tmp_path / name).write_text("{}")
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['TTS'] = None\n"
        "from livedub.runtime.engines import tts_xtts\n"
        "from livedub.runtime.errors import ModelLoadError\n"
        "try:\n"
        f"    tts_xtts.XTTSSynthesizer({str(tmp_path)!r})\n"
        "except ModelLoadError as exc:\n"
        "    print('MODEL_LOAD_ERROR', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "MODEL_LOAD_ERROR" in out.stdout and "coqui-tts" in out.stdout


def test_find_model_dir_names_missing_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=r"lacks model\.pth, vocab\.json"):
        find_model_dir(tmp_path)
    with pytest.raises(ModelLoadError, match="not a directory"):
        find_model_dir(tmp_path / "nope")


def test_find_model_dir_without_path_looks_in_caches_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelLoadError, match="never downloaded"):
        find_model_dir(None)
    legacy = tmp_path / "tts" / "tts_models--multilingual--multi-dataset--xtts_v2"
    legacy.mkdir(parents=True)
    for name in REQUIRED_FILES:
        (legacy / name).write_text("{}")
    assert find_model_dir(None) == legacy


def test_language_mapping() -> None:
    assert xtts_language("zh") == "zh-cn"
    assert xtts_language("ES") == "es"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("", 10, []),
        ("  short  text ", 50, ["short text"]),
        ("Uno dos. Tres cuatro! Cinco?", 12, ["Uno dos.", "Tres cuatro!", "Cinco?"]),
        ("aaaaaaaaaaaaaaa bb", 6, ["aaaaaa", "aaaaaa", "aaa bb"]),
    ],
)
def test_split_text(text: str, limit: int, expected: list[str]) -> None:
    pieces = split_text(text, limit)
    assert pieces == expected
    assert all(len(p) <= limit for p in pieces)


# --- the tiny model -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require("torch", "torch is not installed (the XTTS tests run in .venv-production: hack/setup.sh)")
    require("TTS.tts.models.xtts", "coqui-tts is not importable (the XTTS tests run in .venv-production)")
    return build_tiny_xtts(tmp_path_factory.mktemp("xtts") / "model")


@pytest.fixture(scope="module")
def xtts(tiny_model_dir: Path) -> Any:
    from livedub.runtime.engines.tts_xtts import XTTSSynthesizer

    return XTTSSynthesizer(tiny_model_dir, device="cpu")


@pytest.fixture()
def reference_wav(tmp_path: Path) -> Path:
    path = tmp_path / "anchor.wav"
    sf.write(path, speechlike(3.0, 16000, f0=180), 16000, subtype="PCM_16")
    return path


def _profile(path: Path, name: str = "anchor") -> VoiceProfile:
    return VoiceProfile(name=name, language="es", gender="female", reference_audio=path)


def test_loads_from_a_model_directory(xtts: Any, tiny_model_dir: Path) -> None:
    assert xtts.model_dir == tiny_model_dir
    assert xtts.device == "cpu"
    assert xtts.sample_rate == 24000
    assert {"en", "es", "fr", "de"} <= xtts.languages and "zh-cn" not in xtts.languages
    # Mandarin is offered (as ISO "zh") only when its text front-end (pypinyin) is installed.
    assert ("zh" in xtts.languages) == (importlib.util.find_spec("pypinyin") is not None)
    assert xtts.speakers == list(SPEAKERS)
    assert xtts.default_voice_name == SPEAKERS[0]


def test_default_voice_output_format(xtts: Any) -> None:
    speech = xtts.synthesize("Hola, buenas noches.", language="es")
    assert speech.sample_rate == 24000
    assert speech.audio.dtype == np.float32 and speech.audio.ndim == 1
    assert 0 < len(speech.audio) <= 2 * 24000  # bounded by the tiny model's 24 audio tokens
    assert np.isfinite(speech.audio).all() and np.abs(speech.audio).max() <= 1.0


def test_empty_text_is_empty_speech(xtts: Any) -> None:
    speech = xtts.synthesize("   ", language="en")
    assert len(speech.audio) == 0 and speech.sample_rate == 24000


def test_unsupported_language(xtts: Any) -> None:
    with pytest.raises(EngineError) as info:
        xtts.synthesize("hello", language="xx")
    assert info.value.code is ErrorCode.UNSUPPORTED_LANGUAGE


def test_speed_shortens_the_same_generation(xtts: Any) -> None:
    import torch

    lengths = {}
    for speed in (1.0, 2.0):
        torch.manual_seed(7)  # same sampled GPT codes: only the speed-dependent interpolation differs
        lengths[speed] = len(xtts.synthesize("Bonjour tout le monde", language="fr", speed=speed).audio)
    assert lengths[2.0] == pytest.approx(lengths[1.0] / 2, rel=0.1)


def test_profile_conditioning_is_computed_once_and_refreshed_when_the_file_changes(
    xtts: Any, reference_wav: Path
) -> None:
    profile = _profile(reference_wav)
    before = xtts.cache_info()
    xtts.synthesize("uno", language="es", voice=profile)
    xtts.synthesize("dos", language="es", voice=profile)
    after = xtts.cache_info()
    assert after["misses"] - before["misses"] == 1
    assert after["hits"] - before["hits"] == 1
    # Re-mounted / edited reference: new mtime -> recomputed, and the stale entry is replaced.
    stat = reference_wav.stat()
    os.utime(reference_wav, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    xtts.synthesize("tres", language="es", voice=profile)
    final = xtts.cache_info()
    assert final["misses"] - after["misses"] == 1
    assert final["profiles"] == after["profiles"]


def test_profile_cache_is_an_lru(tiny_model_dir: Path, tmp_path: Path) -> None:
    from livedub.runtime.engines.tts_xtts import XTTSSynthesizer

    small = XTTSSynthesizer(tiny_model_dir, cache_size=2, default_speaker=SPEAKERS[1])
    assert small.default_voice_name == SPEAKERS[1]
    profiles = []
    for index in range(3):
        path = tmp_path / f"r{index}.wav"
        sf.write(path, speechlike(1.5, 22050, f0=100 + 40 * index, seed=index), 22050)
        profiles.append(_profile(path, f"p{index}"))
    for profile in profiles:
        small.synthesize("hi", language="en", voice=profile)
    assert small.cache_info()["profiles"] == 2
    small.synthesize("hi", language="en", voice=profiles[0])  # evicted: computed again
    assert small.cache_info()["misses"] == 4


def test_builtin_speaker_profile_and_profile_without_reference(xtts: Any) -> None:
    builtin = VoiceProfile(name="studio", language="en", speaker=SPEAKERS[1])
    xtts.validate_voice(builtin)
    assert len(xtts.synthesize("hello", language="en", voice=builtin).audio) > 0
    plain = VoiceProfile(name="generic-es", language="es", gender="neutral")
    xtts.validate_voice(plain)
    assert len(xtts.synthesize("hola", language="es", voice=plain).audio) > 0


@pytest.mark.parametrize("case", ["missing", "garbage", "too_short", "unknown_speaker", "language"])
def test_validate_voice_rejects_unusable_profiles(xtts: Any, tmp_path: Path, case: str) -> None:
    path = tmp_path / "ref.wav"
    voice = _profile(path)
    if case == "garbage":
        path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    elif case == "too_short":
        sf.write(path, speechlike(0.4, 16000), 16000)
    elif case == "unknown_speaker":
        voice = VoiceProfile(name="studio", language="en", speaker="Nobody")
    elif case == "language":
        sf.write(path, speechlike(2.0, 16000), 16000)
        voice = VoiceProfile(name="sw", language="sw", reference_audio=path)
    with pytest.raises(EngineError) as info:
        xtts.validate_voice(voice)
    assert info.value.code is ErrorCode.INVALID_VOICE_PROFILE and info.value.retryable is False


def test_undecodable_reference_fails_synthesis_as_invalid_voice(xtts: Any, tmp_path: Path) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(b"not audio at all" * 64)
    with pytest.raises(EngineError) as info:
        xtts.synthesize("hola", language="es", voice=_profile(path, "broken"))
    assert info.value.code is ErrorCode.INVALID_VOICE_PROFILE


def test_source_voice_clones_from_in_memory_audio(tiny_model_dir: Path) -> None:
    from livedub.runtime.engines.tts_xtts import XTTSSynthesizer

    engine = XTTSSynthesizer(tiny_model_dir, source_refresh_s=3600)
    xtts_voice = SOURCE_VOICE
    engine.validate_voice(xtts_voice)
    buffer = SourceAudioBuffer("stream-1", 16000, max_seconds=8)
    buffer.append(speechlike(0.5, 16000))
    # Not enough speech yet: the default voice speaks, no conditioning is computed.
    engine.synthesize("hola", language="es", voice=xtts_voice, reference=buffer.reference())
    assert engine.cache_info()["misses"] == 0
    buffer.append(speechlike(2.5, 16000, seed=3))
    engine.synthesize("hola", language="es", voice=xtts_voice, reference=buffer.reference())
    assert engine.cache_info() == {"hits": 0, "misses": 1, "profiles": 0, "sources": 1}
    # Newer audio within the refresh interval: the cached conditioning is reused.
    buffer.append(speechlike(1.0, 16000, seed=4))
    engine.synthesize("otra vez", language="es", voice=xtts_voice, reference=buffer.reference())
    assert engine.cache_info()["misses"] == 1 and engine.cache_info()["hits"] == 1
    # Interval elapsed and audio changed: recomputed.
    engine.source_refresh_s = 0.0
    buffer.append(speechlike(1.0, 16000, seed=5))
    engine.synthesize("y otra", language="es", voice=xtts_voice, reference=buffer.reference())
    assert engine.cache_info()["misses"] == 2
    # No reference at all: default voice, no error.
    assert len(engine.synthesize("sin audio", language="es", voice=xtts_voice).audio) > 0
    engine.forget_source("stream-1")
    assert engine.cache_info()["sources"] == 0


def test_source_reference_at_other_rates(xtts: Any) -> None:
    ref = SourceReference("stream-48k", speechlike(2.0, 48000), 48000, version=1)
    assert len(xtts.synthesize("hello", language="en", voice=SOURCE_VOICE, reference=ref).audio) > 0


def test_long_text_is_split_and_joined(xtts: Any) -> None:
    limit = xtts._model.tokenizer.char_limits["es"]
    text = " ".join(["Esta es una frase de prueba bastante larga."] * (limit // 20))
    assert len(text) > limit
    speech = xtts.synthesize(text, language="es", speed=1.5)
    assert len(speech.audio) > 0 and speech.audio.dtype == np.float32


def test_concurrent_calls_are_serialised(xtts: Any, reference_wav: Path) -> None:
    def work(index: int) -> int:
        voice = _profile(reference_wav, "concurrent") if index % 2 else None
        return len(xtts.synthesize(f"frase {index}", language="es", voice=voice).audio)

    results, errors = run_in_threads(work, 4, timeout_s=60)
    assert not errors and len(results) == 4 and all(n > 0 for n in results)


def test_cuda_requested_without_cuda_is_a_load_error(tiny_model_dir: Path) -> None:
    import torch

    from livedub.runtime.engines.tts_xtts import XTTSSynthesizer

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    started = time.perf_counter()
    with pytest.raises(ModelLoadError, match="no CUDA device"):
        XTTSSynthesizer(tiny_model_dir, device="cuda")
    assert time.perf_counter() - started < 5  # refused before loading weights


def test_unknown_default_speaker_is_a_load_error(tiny_model_dir: Path) -> None:
    from livedub.runtime.engines.tts_xtts import XTTSSynthesizer

    with pytest.raises(ModelLoadError, match="Nobody"):
        XTTSSynthesizer(tiny_model_dir, default_speaker="Nobody")


def test_from_settings(tiny_model_dir: Path) -> None:
    from livedub.runtime.config import Settings
    from livedub.runtime.engines.tts_xtts import XTTSSynthesizer

    settings = Settings(tts_engine="xtts", tts_model_path=tiny_model_dir, tts_device="auto")
    engine = XTTSSynthesizer.from_settings(settings)
    assert engine.model_dir == tiny_model_dir and engine.device in {"cpu", "cuda"}


# --- original (pickled-config) checkpoints --------------------------------------------------------------


def _as_original_checkpoint(source: Path, target: Path) -> Path:
    """Copy the tiny model, re-saving model.pth the way the published XTTS v2 checkpoint is stored:
    with the config pickled as objects of their old module path (coqui-tts converts such a file)."""
    import shutil

    import torch
    from TTS.tts.configs.xtts_config import XttsArgs, XttsAudioConfig, XttsConfig

    shutil.copytree(source, target)
    config = XttsConfig()
    config.load_json(str(target / "config.json"))
    state = torch.load(target / "model.pth", weights_only=True)["model"]
    modules = {cls: cls.__module__ for cls in (XttsArgs, XttsAudioConfig)}
    try:
        for cls in modules:
            cls.__module__ = "TTS.tts.models.xtts"
        torch.save({"model": state, "config": config}, target / "model.pth")
    finally:
        for cls, module in modules.items():
            cls.__module__ = module
    return target


def test_original_checkpoint_on_a_read_only_mount_is_a_clear_load_error(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import torch

    from livedub.runtime.engines.tts_xtts import XTTSSynthesizer

    model_dir = _as_original_checkpoint(tiny_model_dir, tmp_path / "original")

    def read_only(*_: Any, **__: Any) -> None:
        # Tests run as root here, so chmod cannot make a directory read-only: fail the write instead.
        raise OSError(errno.EROFS, "Read-only file system")

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", read_only)
        with pytest.raises(ModelLoadError, match=r"read-only.*tts_xtts prepare DIR"):
            XTTSSynthesizer(model_dir)


def test_prepare_converts_an_original_checkpoint_in_place(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch

    model_dir = _as_original_checkpoint(tiny_model_dir, tmp_path / "original")
    with pytest.raises(Exception):  # noqa: B017 - the pickled config is refused by weights_only loading
        torch.load(model_dir / "model.pth", weights_only=True)
    out = subprocess.run(
        [sys.executable, "-m", "livedub.runtime.engines.tts_xtts", "prepare", str(model_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ready to mount read-only" in out.stdout
    assert isinstance(torch.load(model_dir / "model.pth", weights_only=True)["config"], dict)
