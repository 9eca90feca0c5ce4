"""Apertium from the Debian pairs, on Tatoeba sentences."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from livedub.runtime.engines import mt_apertium
from livedub.runtime.engines.mt_apertium import ApertiumTranslator, plan_routes
from livedub.runtime.errors import EngineError, ErrorCode
from support.data import TATOEBA

needs_apertium = pytest.mark.skipif(shutil.which("apertium") is None, reason="apertium not installed")


def _words(text: str) -> set[str]:
    return set(re.sub(r"[^\w\s]", " ", text.lower()).split())


@pytest.fixture(scope="module")
def apertium() -> ApertiumTranslator:
    return ApertiumTranslator()


@needs_apertium
def test_english_to_spanish_on_tatoeba(apertium, shared_data):
    rows = [line.split("\t")[:2] for line in TATOEBA.read_text().splitlines()[:6]]
    shared = total = 0
    for english, spanish in rows:
        out = apertium.translate(english, source="en", target="es")
        assert out and out != english and "*" not in out and "  " not in out
        shared += len(_words(out) & _words(spanish))
        total += len(_words(spanish))
    assert shared / total > 0.4  # literal, but Spanish: measured 0.63 on these six


@needs_apertium
def test_english_to_french_is_chained_through_spanish(apertium):
    assert apertium.route("en", "fr") == ("eng-spa", "es-fr")
    out = apertium.translate("The cat is sleeping on the red sofa.", source="en", target="fr")
    assert {"le", "chat", "rouge"} <= _words(out), out


@needs_apertium
def test_pairs_and_regional_codes(apertium):
    assert {("en", "es"), ("es", "en"), ("en", "ca"), ("es", "fr"), ("en", "fr")} <= apertium.pairs
    assert apertium.supports("en-US", "es-ES") and not apertium.supports("en", "de")
    assert apertium.translate("   ", source="en", target="es") == ""


@needs_apertium
def test_unsupported_pair_and_failures_have_codes(apertium):
    with pytest.raises(EngineError) as info:
        apertium.translate("hello", source="en", target="de")
    assert info.value.code == ErrorCode.UNSUPPORTED_LANGUAGE and not info.value.retryable
    with pytest.raises(EngineError) as info:
        apertium._run("xxx-yyy", "hello")  # an unknown mode: apertium exits non-zero
    assert info.value.code == ErrorCode.INTERNAL
    hasty = ApertiumTranslator(timeout_s=0.001)
    with pytest.raises(EngineError) as info:
        hasty.translate("hello", source="en", target="es")
    assert info.value.code == ErrorCode.TIMEOUT and info.value.retryable


def test_without_apertium_there_are_no_pairs(monkeypatch, tmp_path: Path):
    assert ApertiumTranslator(modes_dir=tmp_path / "missing").pairs == frozenset()
    monkeypatch.setattr(mt_apertium.shutil, "which", lambda name: None)
    translator = ApertiumTranslator()
    assert translator.pairs == frozenset() and not translator.supports("en", "es")
    with pytest.raises(EngineError):
        translator.translate("hello", source="en", target="es")


def test_discovery_skips_variants_and_routes_through_pivots(tmp_path: Path):
    for name in ("eng-spa", "spa-eng", "es-fr", "eng-cat_valencia", "eco-es-fr", "cat-eng"):
        (tmp_path / f"{name}.mode").write_text("")
    direct = mt_apertium.discover_modes(tmp_path) if shutil.which("apertium") else {}
    if direct:
        assert direct == {
            ("en", "es"): "eng-spa",
            ("es", "en"): "spa-eng",
            ("es", "fr"): "es-fr",
            ("ca", "en"): "cat-eng",
        }
    routes = plan_routes({("en", "es"): "eng-spa", ("es", "fr"): "es-fr", ("ca", "en"): "cat-eng"})
    assert routes[("en", "fr")] == ("eng-spa", "es-fr")
    assert routes[("ca", "es")] == ("cat-eng", "eng-spa")  # through English when Spanish is the target
    assert ("ca", "fr") not in routes  # three hops compound too many errors
