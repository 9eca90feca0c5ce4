import importlib.util
from pathlib import Path

import pytest
from pydantic import ValidationError

from livedub.runtime.config import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_defaults_are_the_embedded_default():
    settings = Settings(_env_file=None)
    assert settings.port == 8000
    assert settings.mt_engine == "auto" and settings.deepl_auth_key is None
    assert settings.asr_model_size == "embedded"


def test_guide_variable_names_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEEPL_AUTH_KEY", "secret-key:fx")
    monkeypatch.setenv("ASR_DEVICE", "cuda")
    monkeypatch.setenv("BACKPRESSURE_THRESHOLD_CRITICAL", "12")
    monkeypatch.setenv("DURATION_VARIANCE_PARTIAL_MAX", "0.25")
    settings = Settings(_env_file=None)
    assert settings.asr_device == "cuda" and settings.backpressure_threshold_critical == 12
    assert settings.duration_variance_partial_max == 0.25
    assert "secret-key" not in repr(settings) and "secret-key" not in str(settings.model_dump())


@pytest.mark.parametrize(
    "env",
    [
        {"BACKPRESSURE_THRESHOLD_LOW": "8"},
        {"DURATION_VARIANCE_SUCCESS_MAX": "0.5"},
        {"PORT": "0"},
        {"ASR_DEVICE": "tpu"},
    ],
)
def test_bad_values_fail_fast(monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_env_example_documents_every_setting_and_is_current():
    spec = importlib.util.spec_from_file_location("gen_env_example", ROOT / "hack" / "gen_env_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / ".env.example").read_text() == module.render(), "run: python hack/gen_env_example.py"
    for name in Settings.model_fields:
        assert f"# {name.upper()}=" in (ROOT / ".env.example").read_text()


def test_concurrency_defaults_follow_the_device_and_explicit_values_win(monkeypatch):
    settings = Settings(_env_file=None)
    cpu, cuda = settings.sizing("cpu"), settings.sizing("cuda")
    assert (cpu.asr_batch_window_ms, cpu.asr_max_batch) == (0, 8), "no batching on CPU: a batch only queues work"
    assert (cuda.asr_batch_window_ms, cuda.asr_max_batch) == (20, 64)
    assert cuda.pipeline_concurrency >= cuda.asr_max_batch, "a full ASR batch must be able to be in flight"
    assert (cpu.pipeline_concurrency, cpu.worker_threads) == (2, 4)
    for key, value in {"ASR_BATCH_WINDOW_MS": "0", "ASR_MAX_BATCH": "128", "PIPELINE_CONCURRENCY": "3"}.items():
        monkeypatch.setenv(key, value)
    explicit = Settings(_env_file=None).sizing("cuda")
    assert (explicit.asr_batch_window_ms, explicit.asr_max_batch, explicit.pipeline_concurrency) == (0, 128, 3)
    assert explicit.worker_threads == 32


def test_an_empty_variable_means_the_default(monkeypatch):
    monkeypatch.setenv("PIPELINE_CONCURRENCY", "")  # "# PIPELINE_CONCURRENCY=" uncommented from .env.example
    monkeypatch.setenv("PORT", "")
    settings = Settings(_env_file=None)
    assert settings.pipeline_concurrency is None and settings.port == 8000
