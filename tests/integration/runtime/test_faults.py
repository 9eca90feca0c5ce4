"""Engine faults stay inside one fragment: typed error, the stream goes on, nothing leaks.

The faults are injected by thin wrappers built on the real stage interfaces, around the real
engines (a fault is a boundary we cannot otherwise provoke); what is tested is the server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

import numpy as np
import pytest

from livedub.runtime.engines.base import (
    ASR_SAMPLE_RATE,
    Engines,
    Speech,
    SpeechRecognizer,
    Synthesizer,
    Transcript,
    TranslationOptions,
    Translator,
)
from livedub.runtime.server.keys import SERVICE_KEY
from support.data import fleurs
from support.wrapped import WrappedASR

pytestmark = pytest.mark.slow


class Fault:
    """Fails the first ``times`` calls with ``effect`` (an exception instance, or "hang")."""

    def __init__(self, effect: BaseException | str, times: int = 1, hang_s: float = 4.0) -> None:
        self.effect, self.left, self.hang_s = effect, times, hang_s

    def maybe_fail(self) -> None:
        if self.left <= 0:
            return
        self.left -= 1
        if self.effect == "hang":
            time.sleep(self.hang_s)
            return
        assert isinstance(self.effect, BaseException)
        raise self.effect


class FaultyASR(WrappedASR):
    def __init__(self, inner: SpeechRecognizer, fault: Fault) -> None:
        super().__init__(inner)
        self.fault = fault

    def transcribe(self, audio, *, language, prompt=None, detect_language=False) -> Transcript:
        self.fault.maybe_fail()
        return super().transcribe(audio, language=language, prompt=prompt, detect_language=detect_language)


class FaultyMT(Translator):
    def __init__(self, inner: Translator, fault: Fault) -> None:
        self.inner, self.fault, self.name = inner, fault, inner.name

    def supports(self, source: str, target: str) -> bool:
        return self.inner.supports(source, target)

    @property
    def pairs(self) -> frozenset[tuple[str, str]]:
        return self.inner.pairs

    def translate(self, text, *, source, target, context=None, options: TranslationOptions | None = None) -> str:
        self.fault.maybe_fail()
        return self.inner.translate(text, source=source, target=target, context=context, options=options)


class FaultyTTS(Synthesizer):
    def __init__(self, inner: Synthesizer, fault: Fault) -> None:
        self.inner, self.fault, self.name = inner, fault, inner.name

    @property
    def languages(self) -> frozenset[str]:
        return self.inner.languages

    def synthesize(self, text, *, language, voice=None, speed=1.0) -> Speech:
        self.fault.maybe_fail()
        return self.inner.synthesize(text, language=language, voice=voice, speed=speed)


@pytest.fixture
def speech(shared_data) -> np.ndarray:
    audio, _ = fleurs("fleurs-en-005")
    return audio[: 3 * ASR_SAMPLE_RATE]


@pytest.mark.parametrize(
    ("stage", "effect", "code", "retryable"),
    [
        ("asr", RuntimeError("decoder exploded"), "INTERNAL", False),
        ("translation", MemoryError(), "INTERNAL", True),
        ("tts", RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "INTERNAL", True),
        ("tts", "hang", "TIMEOUT", True),
    ],
)
async def test_engine_fault_fails_one_fragment_and_the_stream_continues(
    make_server, engines, speech, stage, effect, code, retryable
):
    fault = Fault(effect, hang_s=6.5)
    wrapped = {
        "asr": lambda: dataclasses.replace(engines, asr=FaultyASR(engines.asr, fault)),
        "translation": lambda: dataclasses.replace(engines, translator=FaultyMT(engines.translator, fault)),
        "tts": lambda: dataclasses.replace(engines, tts=FaultyTTS(engines.tts, fault)),
    }[stage]()
    # One fragment at a time, and a TTS timeout far above a real call (~1.5 s idle, ~3.5 s on a loaded
    # 2-core machine) but below the hang.
    server = await make_server(engines_override=wrapped, tts_timeout_ms=6000, pipeline_concurrency=1)
    client = await server.connect()
    await client.init()
    await client.send("broken", 0, speech)
    await client.send("fine", 1, speech)
    first, second = await client.processed(2, timeout=120)
    assert first["status"] == "failed"
    assert first["error"]["stage"] == stage
    assert first["error"]["code"] == code and first["error"]["retryable"] is retryable
    assert second["status"] in ("success", "partial"), second
    service = server.app[SERVICE_KEY]
    for _ in range(100):
        if service.inflight_total == 0:
            break
        await asyncio.sleep(0.05)
    assert service.inflight_total == 0
    assert service.metrics.inflight._value.get() == 0
    assert isinstance(wrapped, Engines)


class SlowSerialTTS(FaultyTTS):
    """The real TTS behind one lock and a slow model: what XTTS on a busy GPU looks like from outside."""

    def __init__(self, inner: Synthesizer, hold_s: float) -> None:
        super().__init__(inner, Fault("never", times=0))
        self.hold_s = hold_s
        self.lock = threading.Lock()

    def synthesize(self, text, *, language, voice=None, speed=1.0) -> Speech:
        with self.lock:
            time.sleep(self.hold_s)
            return self.inner.synthesize(text, language=language, voice=voice, speed=speed)


async def test_fragments_queue_for_a_serial_tts_outside_its_timeout(make_server, engines, speech):
    # One call takes ~1.5 s + synthesis (1-3 s, idle to loaded 2-core machine), inside 6 s; three at
    # once behind the engine's lock would wait 2 calls inside the stage timer (~8 s or more) and time
    # out. They queue in front of the stage instead.
    slow = dataclasses.replace(engines, tts=SlowSerialTTS(engines.tts, hold_s=1.5))
    server = await make_server(engines_override=slow, tts_timeout_ms=6000, pipeline_concurrency=3)
    client = await server.connect()
    await client.init()
    for number in range(3):
        await client.send(f"f{number}", number, speech)
    results = await client.processed(3, timeout=120)
    assert all(r["status"] in ("success", "partial") for r in results), [r.get("error") for r in results]
    assert [r["sequence_number"] for r in results] == [0, 1, 2]
    assert all(r["stage_timings"]["tts_ms"] < 6000 for r in results)
