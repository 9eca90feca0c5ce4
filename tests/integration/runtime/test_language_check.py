"""The language check over the real wire: a Spanish FLEURS fragment on a stream declared English.

Real Whisper base detects the language from real speech; nothing is faked except, in the last test,
an ASR wrapper that hides the engine's ability to detect (a boundary we cannot otherwise provoke).
"""

from __future__ import annotations

import dataclasses
import logging
import re

import numpy as np
import pytest

from livedub.runtime.engines.base import ASR_SAMPLE_RATE, SpeechRecognizer, Transcript
from livedub.runtime.server.keys import SERVICE_KEY
from support.data import fleurs

pytestmark = pytest.mark.slow
SR = ASR_SAMPLE_RATE


@pytest.fixture(scope="module")
def clips(shared_data) -> dict[str, np.ndarray]:
    # First 6 s of each clip; Whisper base detects them as en 0.97, es 0.997, en 0.97.
    return {
        "en-a": fleurs("fleurs-en-001")[0][: 6 * SR],
        "es": fleurs("fleurs-es-000")[0][: 6 * SR],
        "en-b": fleurs("fleurs-en-002")[0][: 6 * SR],
    }


def _sample(server, name: str, **labels: str) -> float:
    """A sample of /metrics as the operator's scraper would read it (0 when absent)."""
    text = server.app[SERVICE_KEY].metrics.render().decode()
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and dict(re.findall(r'(\w+)="([^"]*)"', match.group(1))) == labels:
            return float(match.group(2))
    return 0.0


async def test_refuse_fails_only_the_foreign_fragment_and_keeps_the_stream_in_order(make_server, clips):
    # Three at once: the refused fragment finishes (right after ASR) while the first is still dubbed.
    server = await make_server(asr_language_check="refuse", pipeline_concurrency=3)
    client = await server.connect()
    kind, _ = await client.init(source_language="en", target_language="es")
    assert kind == "stream:ready"
    await client.send("en-a", 0, clips["en-a"])
    await client.send("es", 1, clips["es"])
    await client.send("en-b", 2, clips["en-b"])
    await client.send("pause", 3, np.zeros(6 * SR, np.float32))
    results = await client.processed(4, timeout=180)
    assert [r["sequence_number"] for r in results] == [0, 1, 2, 3]
    first, refused, second, silence = results
    for dubbed in (first, second):
        assert dubbed["status"] in ("success", "partial") and dubbed["dubbed_audio"] and dubbed["transcript"]
    assert silence["status"] == "success"
    assert refused["status"] == "failed" and "dubbed_audio" not in refused
    error = refused["error"]
    assert error["stage"] == "asr" and error["code"] == "LANGUAGE_MISMATCH" and error["retryable"] is False
    assert "'es'" in error["message"] and "'en'" in error["message"] and "probability 0.99" in error["message"]
    assert _sample(server, "sts_fragment_errors_total", stage="asr", code="LANGUAGE_MISMATCH") == 1
    assert _sample(server, "sts_language_mismatch_total", source="en", detected="es") == 1
    # The refused speech never becomes the translation context of the fragments after it.
    service = server.app[SERVICE_KEY]
    (connection,) = service.connections.values()
    assert connection.streams["stream-1"].previous_transcript in (first["transcript"], second["transcript"])
    await client.client.emit("stream:end", {})
    await client.wait_for(lambda r: bool(r.of("stream:complete")), 30)
    complete = client.of("stream:complete")[0]
    assert complete["fragments_delivered"] == 4 and complete["failed"] == 1
    assert service.inflight_total == 0


async def test_warn_dubs_the_foreign_fragment_logs_and_counts_it(make_server, clips, caplog):
    server = await make_server(asr_language_check="warn")
    client = await server.connect()
    await client.init(source_language="en", target_language="es")
    with caplog.at_level(logging.WARNING, logger="livedub.runtime.pipeline.pipeline"):
        await client.send("es", 0, clips["es"])
        (result,) = await client.processed(1, timeout=120)
    assert result["status"] in ("success", "partial") and result["dubbed_audio"] and result["translated_text"]
    assert _sample(server, "sts_language_mismatch_total", source="en", detected="es") == 1
    assert _sample(server, "sts_fragment_errors_total", stage="asr", code="LANGUAGE_MISMATCH") == 0
    (record,) = [r for r in caplog.records if r.getMessage() == "language mismatch"]
    assert (record.source, record.detected, record.action) == ("en", "es", "warn")
    assert record.probability > 0.9


async def test_off_by_default_and_a_stream_may_ask_for_refuse_itself(make_server, clips):
    server = await make_server()
    client = await server.connect(stream_id=None)
    await client.init(source_language="en", target_language="es", stream_id="plain")
    await client.init(source_language="en", target_language="es", stream_id="strict", language_check="refuse")
    await client.send("plain-es", 0, clips["es"], stream_id="plain")
    await client.send("strict-es", 0, clips["es"], stream_id="strict")
    results = {r["fragment_id"]: r for r in await client.processed(2, timeout=120)}
    assert results["plain-es"]["status"] in ("success", "partial"), "off: dubbed as before, no detection"
    assert results["strict-es"]["error"]["code"] == "LANGUAGE_MISMATCH"
    assert _sample(server, "sts_language_mismatch_total", source="en", detected="es") == 1


class _NoDetection(SpeechRecognizer):
    """The real engine behind an ASR interface that cannot detect (like an English-only model)."""

    def __init__(self, inner: SpeechRecognizer) -> None:
        self.inner, self.name = inner, "no-detection"

    @property
    def languages(self) -> frozenset[str]:
        return self.inner.languages

    def transcribe(self, audio, *, language, prompt=None, detect_language=False) -> Transcript:
        return self.inner.transcribe(audio, language=language, prompt=prompt)


async def test_a_check_the_asr_cannot_run_is_refused_at_stream_init(make_server, engines):
    server = await make_server(engines_override=dataclasses.replace(engines, asr=_NoDetection(engines.asr)))
    client = await server.connect()
    kind, payload = await client.init(language_check="refuse")
    assert kind == "error" and payload["code"] == "INVALID_PAYLOAD" and "no-detection" in payload["message"]
    kind, _ = await client.init(language_check="off")
    assert kind == "stream:ready"
