"""The stream glossary: matching, and the fixed terms kept through the real Apertium."""

from __future__ import annotations

import shutil

import pytest

from livedub.runtime.engines.base import TranslationOptions
from livedub.runtime.engines.mt_apertium import ApertiumTranslator
from livedub.runtime.engines.mt_glossary import Glossary

needs_apertium = pytest.mark.skipif(shutil.which("apertium") is None, reason="apertium not installed")
# Apertium itself says "Liga de Campeones"; this broadcaster says "la Champions".
TERMS = (("the Champions League", "la Champions"), ("Real Madrid", "Real Madrid"), ("VAR", "videoarbitraje"))


def test_matching_is_on_word_boundaries_and_ignores_case() -> None:
    glossary = Glossary((*TERMS, ("art", "arte")))
    assert glossary.applicable("so the champions league starts") == [("the Champions League", "la Champions")]
    assert glossary.applicable("Let's start.") == []  # "art" inside "start" is not the term
    assert glossary.missing("VAR checks it", "el VAR lo revisa") == [("VAR", "videoarbitraje")]
    assert glossary.missing("VAR checks it", "el videoarbitraje lo revisa") == []
    assert not Glossary() and Glossary(TERMS)
    assert {"champions", "real", "madrid"} <= glossary.kept_words()


@needs_apertium
def test_apertium_keeps_the_fixed_terms() -> None:
    apertium = ApertiumTranslator()
    text = "Real Madrid won the Champions League after a long VAR check."
    plain = apertium.translate(text, source="en", target="es")
    fixed = apertium.translate(text, source="en", target="es", options=TranslationOptions(glossary=TERMS))
    assert "la Champions" not in plain and "videoarbitraje" not in plain
    assert "la Champions" in fixed and "videoarbitraje" in fixed and "Real Madrid" in fixed
    assert "ZQX" not in fixed  # every placeholder came back as its term
    # Terms that do not occur change nothing.
    assert apertium.translate("I like cats.", source="en", target="es", options=TranslationOptions(glossary=TERMS)) == (
        apertium.translate("I like cats.", source="en", target="es")
    )


@needs_apertium
def test_many_terms_do_not_clobber_each_other() -> None:
    # ZQX1 is a prefix of ZQX10: the longer placeholder must be replaced first.
    terms = tuple((f"term{chr(97 + i)}", f"T{i}") for i in range(12))
    text = "We discuss terma and termk today."
    out = ApertiumTranslator().translate(text, source="en", target="es", options=TranslationOptions(glossary=terms))
    assert "T0" in out and "T10" in out and "ZQX" not in out
