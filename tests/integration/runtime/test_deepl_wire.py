"""DeepL as the translation engine, over the wire, against the local DeepL-compatible server.

The fake speaks DeepL's v2 API to the official ``deepl`` client (tests/fakes); what is tested is
the runtime: error codes on ``fragment:processed``, context between fragments, and fallback to the
embedded engine with recovery.
"""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from fakes.deepl_server import DEFAULT_KEY, FakeDeepL
from livedub.runtime.engines.base import ASR_SAMPLE_RATE
from livedub.runtime.engines.mt_deepl import DeepLTranslator
from livedub.runtime.engines.mt_fallback import FallbackTranslator
from livedub.runtime.server.keys import SERVICE_KEY
from support.data import fleurs

pytestmark = pytest.mark.slow


@pytest.fixture
def speech(shared_data) -> list[np.ndarray]:
    audio, _ = fleurs("fleurs-en-007")
    return [audio[i * 3 * ASR_SAMPLE_RATE : (i + 1) * 3 * ASR_SAMPLE_RATE] for i in range(2)]


def deepl(fake: FakeDeepL) -> DeepLTranslator:
    return DeepLTranslator(DEFAULT_KEY, server_url=fake.url, timeout_s=0.5, max_retries=0, deadline_s=1.0)


async def test_rate_limit_reaches_the_client_as_retryable_and_context_flows(make_server, engines, fake_deepl, speech):
    server = await make_server(engines_override=dataclasses.replace(engines, translator=deepl(fake_deepl)))
    client = await server.connect()
    kind, ready = await client.init()
    assert kind == "stream:ready" and ready["engines"]["translation"] == "deepl"
    await client.send("ok", 0, speech[0])
    first = (await client.processed(1))[0]
    assert first["status"] in ("success", "partial") and "[ES" in first["translated_text"]

    fake_deepl.fail_next(429, count=1)
    await client.send("limited", 1, speech[1])
    second = (await client.processed(2))[1]
    assert second["status"] == "failed"
    assert second["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert second["error"]["stage"] == "translation" and second["error"]["retryable"] is True
    # The previous fragment's transcript travelled to DeepL as context (informs, not translated).
    last = fake_deepl.translate_requests()[-1]
    assert last.params.get("context") == first["transcript"]


async def test_deepl_outage_falls_back_to_embedded_mt_then_recovers(make_server, engines, fake_deepl, speech):
    translator = FallbackTranslator(deepl(fake_deepl), engines.translator, failure_threshold=1, recovery_s=0.5)
    server = await make_server(engines_override=dataclasses.replace(engines, translator=translator))
    client = await server.connect()
    await client.init()
    fake_deepl.fail_next(503, count=3)
    await client.send("outage", 0, speech[0])
    during = (await client.processed(1))[0]
    assert during["status"] in ("success", "partial") and "[ES" not in during["translated_text"]
    metrics = server.app[SERVICE_KEY].metrics.render().decode()
    assert "sts_translation_fallback_total 1.0" in metrics

    fake_deepl.reset()  # DeepL is back: the faults not yet consumed are dropped
    await asyncio.sleep(0.6)  # past recovery_s: the next call probes DeepL again
    await client.send("recovered", 1, speech[1])
    after = (await client.processed(2))[1]
    assert "[ES" in after["translated_text"]
