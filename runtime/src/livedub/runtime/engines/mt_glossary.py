"""A stream's glossary: source terms that must translate one way (stream:init ``glossary``).

Two ways to honour it, by engine:

* An LLM is told the fixed translations in its prompt; :meth:`Glossary.missing` then checks the
  answer really contains them (a small model does not always obey), so the caller can insist once
  and otherwise fall back.
* A rule-based engine (Apertium) cannot be told anything, so :meth:`Glossary.protect` hides each
  term behind a placeholder it passes through untouched as an unknown word (``ZQX1``: measured with
  ``apertium -u eng-spa``, it keeps such tokens verbatim in place), translates, and puts the fixed
  translation where the placeholder came out. A placeholder the engine lost leaves that term to the
  engine, which is no worse than without a glossary.

Matching is case-insensitive on word boundaries: "Real Madrid" matches "real madrid's" but "art"
does not match "start".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property

from livedub.runtime.engines.base import TranslationOptions, Translator

_PLACEHOLDER = "ZQX{}"


def _pattern(term: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(term.strip())}(?!\w)", re.IGNORECASE)


class Glossary:
    def __init__(self, entries: Sequence[tuple[str, str]] = ()) -> None:
        # Longest source first: "Real Madrid" must be replaced before "Madrid".
        self.entries = tuple(sorted(((s.strip(), t.strip()) for s, t in entries), key=lambda e: -len(e[0])))

    def __bool__(self) -> bool:
        return bool(self.entries)

    @cached_property
    def _patterns(self) -> tuple[re.Pattern[str], ...]:
        return tuple(_pattern(source) for source, _ in self.entries)

    def applicable(self, text: str) -> list[tuple[str, str]]:
        """The entries whose source term occurs in ``text``."""
        return [entry for entry, pattern in zip(self.entries, self._patterns, strict=True) if pattern.search(text)]

    def missing(self, text: str, answer: str) -> list[tuple[str, str]]:
        """Entries that apply to ``text`` but whose fixed translation is not in ``answer``."""
        return [(s, t) for s, t in self.applicable(text) if not _pattern(t).search(answer)]

    def kept_words(self) -> frozenset[str]:
        """Lower-cased words of the fixed translations: the answer may contain them verbatim."""
        return frozenset(w.lower() for _, target in self.entries for w in re.findall(r"\w+", target))

    def protect(
        self,
        translator: Translator,
        text: str,
        *,
        source: str,
        target: str,
        context: str | None = None,
        options: TranslationOptions | None = None,
    ) -> str:
        """Translate ``text`` with ``translator`` keeping every applicable term's fixed translation."""
        hidden, fixed = text, {}
        for index, (entry, pattern) in enumerate(zip(self.entries, self._patterns, strict=True)):
            token = _PLACEHOLDER.format(index + 1)
            hidden, count = pattern.subn(token, hidden)
            if count:
                fixed[token] = entry[1]
        plain = replace(options, glossary=()) if options is not None else None
        out = translator.translate(hidden, source=source, target=target, context=context, options=plain)
        for token in sorted(fixed, key=len, reverse=True):  # ZQX10 before ZQX1
            translation = fixed[token]
            if token not in out:  # the engine lost it: translate that term as the engine would
                return translator.translate(text, source=source, target=target, context=context, options=plain)
            out = out.replace(token, translation)
        return out
