"""The LLM answer guards on real answers: good translations pass, each kind of failure is named."""

from __future__ import annotations

import pytest

from livedub.runtime.engines.base import LengthBudget
from livedub.runtime.engines.mt_guard import REASONS, check

SOURCE = "Nevertheless, fashions in the western world could lag behind by 25 to 30 years."


@pytest.mark.parametrize(
    ("source", "answer"),
    [
        # Answers of the packaged model and Apertium on FLEURS and Tatoeba lines: real translations.
        (SOURCE, "Sin embargo, debido a los canales de comunicación lentos, los estilos podrían retrasarse 25 años."),
        ("Tom went to Boston with Mary.", "Tom fue a Boston con Mary."),
        ("I have a hotel in Madrid.", "Tengo un hotel en Madrid."),  # shared words, names
        ("Hi.", "¡Hola!"),
        ("The animal is normal.", "El animal es normal."),  # cognates of under four ordinary words
    ],
)
def test_real_translations_pass(source: str, answer: str) -> None:
    assert check(source, answer, source="en", target="es") is None


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("", "empty"),
        ("  ...  ", "empty"),
        ("Sin embargo " * 15, "repetition"),
        ("el hombre, el hombre, el hombre, el hombre.", "repetition"),
        ("Nevertheless, fashions in the western world could lag behind by 25 to 30 years.", "wrong_language"),
        # Apertium's real output for this sentence's end, with most of it left in English.
        ("Sin embargo, fashions in western world could lag behind por 25 a 30 años.", "untranslated"),
        ("Claro, aquí tienes la traducción. " + "x" * 300, "over_budget"),
    ],
)
def test_each_failure_is_named(answer: str, reason: str) -> None:
    assert check(SOURCE, answer, source="en", target="es") == reason
    assert reason in REASONS


def test_budget_widens_the_room_and_glossary_words_may_be_copied() -> None:
    long_answer = (
        "Una frase española bastante larga que ocupa su sitio, luego otra que dice algo distinto "
        "y una tercera que termina la idea con calma."
    )
    assert check("Hello there.", long_answer, source="en", target="es") == "over_budget"
    budget = LengthBudget(12.0, 150)
    assert check("Hello there.", long_answer, source="en", target="es", budget=budget) is None
    source = "Watch the Champions League final tonight on Premium Sports channel."
    kept = "Mira la final de la Champions League tonight en Premium Sports channel."
    assert check(source, kept, source="en", target="es") == "untranslated"
    keep = frozenset({"champions", "league", "tonight", "channel", "premium", "sports"})
    assert check(source, kept, source="en", target="es", keep=keep) is None


@pytest.mark.parametrize("line", ["Thank you very much.", "Good morning, everyone!", "Welcome back.", "How are you?"])
def test_a_short_line_echoed_back_is_untranslated(line: str) -> None:
    # Under five words the language check cannot decide and under four ordinary words the copy check
    # does not look: an echo of a short broadcast line must still not be spoken as the dub.
    assert check(line, line, source="en", target="es") == "untranslated"
    assert check(line, f"«{line.upper()}»", source="en", target="es") == "untranslated"


@pytest.mark.parametrize(("line", "keep"), [("Barcelona!", ""), ("Real Madrid.", ""), ("OK.", ""), ("VAR.", "var")])
def test_a_name_or_one_word_may_come_back_unchanged(line: str, keep: str) -> None:
    assert check(line, line, source="en", target="es", keep=frozenset({keep} - {""})) is None
