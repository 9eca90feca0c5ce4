"""Fit the line to its slot before it is spoken: shorter rewrites chosen by predicted tempo.

The post-synthesis rewrite (pipeline.py) costs a second synthesis and lands only when its one
answer happens to be short enough. Measured on 10 FLEURS clips (llm+budget, commit cba438f), the
three fragments left out of the natural band were lines longer than the whole 6 s fragment that the
1.5B model had been asked, once, to bring to "at most 14 words" and left at 16-20. So here,
between translation and synthesis, with the voice's measured rate (pipeline/prefit.py) predicting
each line's tempo without synthesising it:

1. The translation is kept when its predicted tempo is in the band (with :data:`PREDICTION_MARGIN`
   for the prediction's error).
2. Otherwise the model is told the concrete target: the characters the voice says in the whole
   fragment at tempo :data:`AIM_TEMPO`, as a word count scaled from the line's own (a 1.5B model
   follows words, not characters: mt_llm.rewrite_words).
3. If that rewrite is still predicted too fast (measured: the 1.5B model can return the line
   unshortened), one firmer rewrite with a worked example in the prompt, aimed at the band's top
   (:data:`TIGHTER_AIM_TEMPO`: asked this way the model cuts well past the target).
4. As the last resort, the rule-based engine's line (already the LLM's fallback), when the
   translator has one.

A candidate is admissible only if it keeps the stream's glossary terms and is not far too short
(under :data:`MIN_SHARE` of what the slot holds: content dropped beyond what the fit needs). Among
admissible candidates predicted in band, the *first* in the order above wins (the most faithful:
every rewrite loses some meaning); when none is, the one predicted slowest. Only the chosen line is
synthesised. The choice is reported (``FitChoice.origin``, ``sts_translation_fit_total{origin}``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from livedub.runtime.engines.base import LengthBudget, TranslationOptions, Translator
from livedub.runtime.engines.mt_glossary import Glossary
from livedub.runtime.pipeline.tempo import NATURAL_BAND, Slot

#: Where the spoken line came from (``sts_translation_fit_total{origin}``: a bounded label set).
Origin = Literal["first", "shorter", "tighter", "rule-based"]

#: Predicted tempo a candidate must stay under: the band's top less the prediction's error (the
#: per-character rate is an average; a line's own rate differs by a few per cent).
PREDICTION_MARGIN = 0.05
#: The first rewrite aims at the whole fragment at natural tempo (the band allows up to 1.2: the
#: room is for the model's overshoot).
AIM_TEMPO = 1.0
#: The second, firmer rewrite (a worked example in the prompt: mt_llm.firm_messages) aims at the
#: band's top less the margin: the 1.5B model cuts 30-50 % past the word count asked of it then
#: (measured: asked for 12-16 words, it gave 7-9), so aiming any lower drops meaning needlessly.
TIGHTER_AIM_TEMPO = NATURAL_BAND[1] - PREDICTION_MARGIN
#: A candidate under this share of the characters the source's speech span holds at tempo 1.0
#: dropped content beyond what the fit needs.
MIN_SHARE = 0.45


@dataclass(frozen=True, slots=True)
class Candidate:
    text: str
    origin: Origin
    tempo: float  # predicted


@dataclass(frozen=True, slots=True)
class FitChoice:
    text: str
    origin: Origin
    predicted_tempo: float
    candidates: tuple[Candidate, ...]


def fits(tempo: float) -> bool:
    return tempo <= NATURAL_BAND[1] - PREDICTION_MARGIN


def choose(candidates: Sequence[Candidate], admissible: Callable[[Candidate], bool]) -> Candidate:
    """The candidate to speak: the first admissible one predicted in band, else the slowest admissible.

    The first candidate (the translation itself) is always admissible: it is what we had before.
    """
    if not candidates:
        raise ValueError("no candidates")
    first, *rest = candidates
    allowed = [first, *filter(admissible, rest)]
    for candidate in allowed:
        if fits(candidate.tempo):
            return candidate
    return min(allowed, key=lambda c: c.tempo)


def fit_line(
    translator: Translator,
    translation: str,
    *,
    source_text: str,
    source: str,
    target: str,
    options: TranslationOptions,
    slot: Slot,
    seconds_per_char: float,
    predict: Callable[[str], float],
) -> FitChoice:
    """Rewrite ``translation`` until its predicted tempo fits, at most twice, then choose (blocking).

    ``predict(text)``: the tempo the slot rules would play ``text`` at, from the voice's measured
    rate (``seconds_per_char``).
    """
    glossary = Glossary(options.glossary)
    terms = tuple(t for _, t in glossary.applicable(source_text))
    span = slot.span_s if slot.span_s > 0 else slot.fragment_s
    shortest = MIN_SHARE * span / seconds_per_char

    def admissible(candidate: Candidate) -> bool:
        """Not far too short, and every glossary term kept."""
        if candidate.origin == "first":
            return True
        return len(candidate.text.strip()) >= shortest and not glossary.missing(source_text, candidate.text)

    candidates = [Candidate(translation, "first", predict(translation))]

    def done() -> bool:
        return any(fits(c.tempo) and admissible(c) for c in candidates)

    if not done():
        aims: tuple[tuple[Origin, float], ...] = (("shorter", AIM_TEMPO), ("tighter", TIGHTER_AIM_TEMPO))
        for origin, tempo in aims:
            if not options.in_time():  # the stage gave up: leave the model to the next fragment
                break
            # Each rewrite edits the shortest admissible line so far: a too-short one is no base.
            base = [c for c in candidates if admissible(c)][-1].text
            chars = int(slot.fragment_s * tempo / seconds_per_char)
            budget = LengthBudget(seconds=slot.fragment_s, max_chars=max(8, chars))
            rewrite = translator.shorten(
                base, target=target, budget=budget, source_text=source_text, keep=terms, firm=origin == "tighter"
            )
            if rewrite:
                candidates.append(Candidate(rewrite, origin, predict(rewrite)))
                if done():
                    break
        if not done() and options.in_time():
            literal = translator.alternative(source_text, source=source, target=target, options=options)
            if literal:
                candidates.append(Candidate(literal, "rule-based", predict(literal)))
    chosen = choose(candidates, admissible)
    return FitChoice(chosen.text, chosen.origin, chosen.tempo, tuple(candidates))
