"""Cheap checks that an LLM's answer is a translation at all, before it is spoken.

A small instruct model goes wrong in a few recognisable ways: it answers nothing, it runs on far past
what the slot holds, it loops ("el hombre, el hombre, el hombre…"), it answers in the source language
(or leaves most of the sentence untranslated), or it "helps" with notes. Each check here is a few
microseconds of string work, so every answer gets all of them; a rejected answer is translated by the
rule-based MT instead (mt_llm.py) and counted by its :data:`Reason` in ``/metrics``.

The language check uses function words, the most frequent and least ambiguous words of a language
(articles, prepositions, pronouns): a sentence of five or more words has some, and which language's
they are says which language it is. Content words are shared too often between these languages
(hotel, animal, general) to decide alone.
"""

from __future__ import annotations

import re
import zlib
from typing import Literal

from livedub.runtime.engines.base import LengthBudget, base_language

Reason = Literal["empty", "over_budget", "repetition", "wrong_language", "untranslated"]
#: Every reason, for metrics labels (bounded: one series each).
REASONS: tuple[Reason, ...] = ("empty", "over_budget", "repetition", "wrong_language", "untranslated")

#: An answer this many times its room (the longer of the source and the budget) is a runaway.
OVER_BUDGET_FACTOR = 2.5
_OVER_BUDGET_SLACK = 20  # characters: a short sentence may legitimately double
#: zlib's ratio on text that repeats itself (Whisper's own hallucination check uses 2.4).
_COMPRESSION_MAX = 2.4
_COMPRESSION_MIN_CHARS = 60
#: Share of the source's ordinary words (not names, not numbers) found verbatim in the answer.
UNTRANSLATED_SHARE = 0.5
_UNTRANSLATED_MIN_WORDS = 4

_FUNCTION_WORDS_TEXT = {
    "en": "the a an of and to in is are was were that this with for on it he she they you not be",
    "es": "el la los las un una a de del y que en es son fue por para con se no lo su al como",
    "fr": "le la les un une des de du et que en est sont pour avec se ne pas il elle au",
    "de": "der die das ein eine und ist sind nicht mit von zu den dem des auf für sich es",
    "it": "il lo la gli le un una di del e che è sono per con non si della al",
    "pt": "o a os as um uma de do da e que em é são por para com não se no na",
    "ca": "el la els les un una de del i que en és són per amb no es al com",
    "nl": "de het een en van is zijn niet met voor op te dat die in",
}
_FUNCTION_WORDS = {language: frozenset(text.split()) for language, text in _FUNCTION_WORDS_TEXT.items()}
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)?")  # an apostrophe keeps "l'homme" whole


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def check(
    source_text: str,
    answer: str,
    *,
    source: str,
    target: str,
    budget: LengthBudget | None = None,
    keep: frozenset[str] = frozenset(),
) -> Reason | None:
    """Why ``answer`` must not be spoken as the translation of ``source_text``, or None.

    ``keep``: lower-cased words the answer may copy from the source (glossary terms kept as written).
    """
    shape = check_shape(source_text, answer, budget)
    if shape is not None:
        return shape
    if _wrong_language(answer, base_language(source), base_language(target)):
        return "wrong_language"
    if _untranslated(source_text, answer, keep):
        return "untranslated"
    return None


def check_shape(source_text: str, answer: str, budget: LengthBudget | None = None) -> Reason | None:
    """The language-blind checks: empty, far past its room, a loop (also for same-language rewrites)."""
    if not answer.strip() or not words(answer):
        return "empty"
    room = max(len(source_text), budget.max_chars if budget else 0)
    if len(answer) > OVER_BUDGET_FACTOR * room + _OVER_BUDGET_SLACK:
        return "over_budget"
    if _repeats(answer):
        return "repetition"
    return None


def _repeats(answer: str) -> bool:
    tokens = [w.lower() for w in words(answer)]
    # The same three words three times over is a loop, whatever the length.
    grams = [tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)]
    if grams and max(grams.count(g) for g in set(grams)) >= 3:
        return True
    data = answer.encode("utf-8")
    return len(data) >= _COMPRESSION_MIN_CHARS and len(data) / len(zlib.compress(data)) > _COMPRESSION_MAX


def _wrong_language(answer: str, source: str, target: str) -> bool:
    """More of the source language's function words than the target's, in a sentence long enough."""
    src, tgt = _FUNCTION_WORDS.get(source), _FUNCTION_WORDS.get(target)
    tokens = [w.lower() for w in words(answer)]
    if src is None or tgt is None or len(tokens) < 5:
        return False
    # Words both languages share ("la" fr/es, "de") say nothing about which one this is.
    in_source = sum(t in src and t not in tgt for t in tokens)
    in_target = sum(t in tgt and t not in src for t in tokens)
    return in_source >= 2 and in_source > in_target


def _untranslated(source_text: str, answer: str, keep: frozenset[str]) -> bool:
    """Most of the source's ordinary words copied verbatim: names (capitalised mid-sentence),
    short words and glossary terms aside, those are shared by translation only by accident."""
    source_words = words(source_text)
    translatable = _translatable(source_words, keep)
    if _echoed(source_words, answer, translatable):
        return True
    ordinary = {w.lower() for w in translatable if len(w) >= 4}
    if len(ordinary) < _UNTRANSLATED_MIN_WORDS:
        return False
    answered = {w.lower() for w in words(answer)}
    return len(ordinary & answered) / len(ordinary) >= UNTRANSLATED_SHARE


def _translatable(source_words: list[str], keep: frozenset[str]) -> list[str]:
    """The source words a translation should change: not names (capitalised mid-sentence), not
    glossary terms."""
    return [w for i, w in enumerate(source_words) if (i == 0 or not w[0].isupper()) and w.lower() not in keep]


def _echoed(source_words: list[str], answer: str, translatable: list[str]) -> bool:
    """The source handed back word for word: under five words neither check above can see it
    ("Thank you very much.", "Welcome back."), and a broadcast says such short lines all the time.
    Two translatable words: a name alone ("Real Madrid.") may stay."""
    if [w.lower() for w in words(answer)] != [w.lower() for w in source_words]:
        return False
    return len(translatable) >= 2
