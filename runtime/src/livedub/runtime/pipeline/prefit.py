"""Pre-fit the TTS speaking rate so the time-stretch afterwards stays small.

Engines that take a ``speed`` (Kokoro, XTTS, espeak) speak faster natively with far fewer
artefacts than a phase vocoder adds afterwards. We learn each (engine, language)'s seconds per
character from what it has produced (an exponential moving average, normalised to speed 1.0),
predict how long a translation will take to say, and ask for the tempo the slot rules
(pipeline/tempo.py) choose for it: natural speed for a line that fits the source's speech span, a
faster one only for a line that does not. Rubber Band then only corrects the prediction error.
Until a language has been seen, speed 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from livedub.runtime.engines.base import LengthBudget
from livedub.runtime.pipeline.tempo import Slot, tempo_for

#: Native speed range asked of TTS engines: beyond it voices degrade faster than stretching does.
MIN_SPEED, MAX_SPEED = 0.85, 1.35
_ALPHA = 0.3  # EMA weight of the newest observation: adapts within a few fragments
#: Seconds per character assumed before a (engine, language) has been heard (~15 characters a
#: second, ordinary conversational Spanish); the first fragments replace it with the voice's own rate.
DEFAULT_SECONDS_PER_CHAR = 0.068


@dataclass
class SpeakingRate:
    _seconds_per_char: dict[tuple[str, str], float] = field(default_factory=dict)

    def speed_for(self, engine: str, language: str, text: str, slot: Slot) -> float:
        """The native speed to ask for: the slot's tempo for the predicted length, in the engine's range."""
        rate = self._seconds_per_char.get((engine, language))
        chars = len(text.strip())
        if rate is None or chars == 0 or slot.fragment_s <= 0:
            return 1.0
        return min(max(tempo_for(rate * chars, slot, MAX_SPEED), MIN_SPEED), MAX_SPEED)

    def natural_seconds(self, engine: str, language: str, text: str) -> float:
        """The predicted length of ``text`` at speed 1.0 (the default rate until the voice is heard)."""
        return self.seconds_per_char(engine, language) * len(text.strip())

    def seconds_per_char(self, engine: str, language: str) -> float:
        return self._seconds_per_char.get((engine, language), DEFAULT_SECONDS_PER_CHAR)

    def budget(self, engine: str, language: str, target_s: float) -> LengthBudget | None:
        """The characters ``engine`` says in ``target_s`` at speed 1.0: the translation's length budget."""
        if target_s <= 0:
            return None
        return LengthBudget(seconds=target_s, max_chars=max(8, int(target_s / self.seconds_per_char(engine, language))))

    def observe(self, engine: str, language: str, text: str, seconds: float, speed: float) -> None:
        chars = len(text.strip())
        if chars == 0 or seconds <= 0:
            return
        sample = seconds * speed / chars  # what speed 1.0 would have taken, per character
        key = (engine, language)
        previous = self._seconds_per_char.get(key)
        self._seconds_per_char[key] = sample if previous is None else (1 - _ALPHA) * previous + _ALPHA * sample
