"""The slot fit's choice (pipeline/slotfit.py): which line is spoken, and which rewrites are asked for.

The translator here is a scripted one on the real :class:`Translator` interface: what is under test is
the selection and the requests made, not a model (tests/unit/engines/test_mt_llm.py runs the real one).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from livedub.runtime.engines.base import LengthBudget, TranslationOptions, Translator
from livedub.runtime.engines.mt_llm import rewrite_words, shorten_messages
from livedub.runtime.pipeline.slotfit import MIN_SHARE, Candidate, choose, fit_line, fits
from livedub.runtime.pipeline.tempo import Slot

SPC = 0.07  # seconds per character, the Kokoro Spanish rate measured in the benches
SLOT = Slot(0.0, 6.0, 6.0)  # speech across the whole 6 s fragment: room for 85 characters at tempo 1.0


def predict(text: str) -> float:
    return max(1.0, SPC * len(text) / SLOT.fragment_s)


class Scripted(Translator):
    """Answers ``shorten`` from a list and ``alternative`` with a fixed line; records the requests."""

    name = "scripted"

    def __init__(self, rewrites: Sequence[str | None], literal: str | None = None) -> None:
        self.rewrites = list(rewrites)
        self.literal = literal
        self.asked: list[tuple[str, int, tuple[str, ...]]] = []
        self.alternatives = 0
        self.firm: list[bool] = []

    @property
    def pairs(self) -> frozenset[tuple[str, str]]:
        return frozenset({("en", "es")})

    def supports(self, source: str, target: str) -> bool:
        return (source, target) in self.pairs

    def translate(self, text: str, **_: object) -> str:
        raise AssertionError("the fit never re-translates")

    def shorten(
        self,
        translation: str,
        *,
        target: str,
        budget: LengthBudget,
        source_text: str = "",
        keep: Sequence[str] = (),
        firm: bool = False,
    ) -> str | None:
        self.asked.append((translation, budget.max_chars, tuple(keep)))
        self.firm.append(firm)
        return self.rewrites.pop(0) if self.rewrites else None

    def alternative(self, text: str, **_: object) -> str | None:
        self.alternatives += 1
        return self.literal


def run(translator: Scripted, first: str, glossary: tuple[tuple[str, str], ...] = ()) -> tuple[str, str]:
    choice = fit_line(
        translator,
        first,
        source_text="The Emergency Management Office said that there were no damages reported in the nation.",
        source="en",
        target="es",
        options=TranslationOptions(glossary=glossary),
        slot=SLOT,
        seconds_per_char=SPC,
        predict=predict,
    )
    return choice.text, choice.origin


LONG = "x" * 110  # tempo 1.28 predicted
SHORTER_STILL_LONG = "y" * 100  # 1.17: past the margin
FITS = "z" * 80  # 1.0


def test_a_line_that_fits_is_kept_without_a_request() -> None:
    translator = Scripted([])
    assert run(translator, FITS) == (FITS, "first")
    assert translator.asked == [] and translator.alternatives == 0


def test_first_rewrite_aims_at_the_fragment_and_stops_when_it_fits() -> None:
    translator = Scripted([FITS])
    assert run(translator, LONG) == (FITS, "shorter")
    assert translator.asked == [(LONG, int(6.0 / SPC), ())]


def test_a_rewrite_still_too_long_gets_one_tighter_one_of_itself() -> None:
    translator = Scripted([SHORTER_STILL_LONG, FITS])
    assert run(translator, LONG) == (FITS, "tighter")
    assert [a[0] for a in translator.asked] == [LONG, SHORTER_STILL_LONG]
    assert translator.firm == [False, True]  # the second ask is the firm one (a worked example)
    assert translator.asked[1][1] == int(6.0 * 1.15 / SPC)  # aimed at the band's top: it overshoots


def test_the_rule_based_line_is_the_last_resort_only() -> None:
    translator = Scripted([SHORTER_STILL_LONG, None], literal="w" * 70)
    assert run(translator, LONG) == ("w" * 70, "rule-based")
    fitting = Scripted([FITS], literal="w" * 70)
    run(fitting, LONG)
    assert fitting.alternatives == 0


def test_when_nothing_fits_the_slowest_admissible_line_is_spoken() -> None:
    translator = Scripted([SHORTER_STILL_LONG, "v" * 105], literal=None)
    assert run(translator, LONG) == (SHORTER_STILL_LONG, "shorter")


def test_a_far_too_short_rewrite_is_rejected() -> None:
    too_short = "s" * int(MIN_SHARE * 6.0 / SPC - 2)
    translator = Scripted([too_short, SHORTER_STILL_LONG])
    assert run(translator, LONG) == (SHORTER_STILL_LONG, "tighter")
    assert translator.asked[1][0] == LONG  # the tighter rewrite starts from the last admissible line


def test_a_rewrite_or_literal_line_without_the_glossary_term_is_rejected() -> None:
    glossary = (("Emergency Management Office", "OGE"),)
    translator = Scripted([FITS, FITS], literal="l" * 60)
    text, origin = run(translator, "OGE " + LONG, glossary)
    assert (text, origin) == ("OGE " + LONG, "first")  # nothing else kept the term: the first line stays
    assert all(keep == ("OGE",) for _, _, keep in translator.asked)  # the rewrite was told to keep it


def test_choose_prefers_order_over_shortness() -> None:
    candidates = [
        Candidate("a" * 110, "first", 1.3),
        Candidate("b" * 80, "shorter", 1.1),
        Candidate("c" * 60, "tighter", 1.0),
    ]
    assert choose(candidates, lambda _: True).origin == "shorter"
    assert choose(candidates, lambda c: c.origin != "shorter").origin == "tighter"
    assert choose(candidates[:1], lambda _: False).origin == "first"  # the translation itself is always allowed
    with pytest.raises(ValueError):
        choose([], lambda _: True)


def test_the_margin_leaves_room_for_the_prediction_error() -> None:
    assert fits(1.1) and not fits(1.19) and not fits(1.2)


def test_rewrite_words_scale_the_lines_own_word_count() -> None:
    line = "El Centro de Emergencias de la Oficina de Administración de la Región dijo que no hubo daños."
    words = len(line.split())
    assert rewrite_words(line, LengthBudget(6.0, len(line) // 2)) == words // 2
    assert rewrite_words(line, LengthBudget(6.0, len(line) - 1)) == words - 1  # always asks for fewer
    assert rewrite_words("Hola.", LengthBudget(6.0, 80)) == 1
    prompt = shorten_messages(line, target="es", budget=LengthBudget(6.0, len(line) // 2), keep=["Oficina"])
    assert f"has {words} words" in prompt[1]["content"] and f"at most {words // 2} words" in prompt[1]["content"]
    assert "'Oficina'" in prompt[1]["content"]


def test_no_rewrite_is_started_after_the_stage_gave_up() -> None:
    # The pipeline's wait_for cannot stop the worker thread: a fit still rewriting after its stage
    # timed out would hold the one llama.cpp model while the next fragment's translation waits.
    translator = Scripted(["Una línea corta."], literal="Línea literal.")
    long = "x " * 80
    choice = fit_line(
        translator,
        long,
        source_text="The Emergency Management Office said that there were no damages reported in the nation.",
        source="en",
        target="es",
        options=TranslationOptions(deadline=time.monotonic() - 0.01),
        slot=SLOT,
        seconds_per_char=SPC,
        predict=predict,
    )
    assert (choice.text, choice.origin) == (long, "first")
    assert translator.asked == [] and translator.alternatives == 0
