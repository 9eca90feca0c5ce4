"""The stream's language check: what to do when a fragment's speech is not in the declared language.

A live worker declares one source language per stream, but broadcasts carry interviews, songs and
inserts in other languages. Dubbing them through the declared pair yields nonsense with a confident
voice. ``refuse`` fails such a fragment with ``LANGUAGE_MISMATCH`` (the worker keeps the original
audio for it, as for any failed fragment), ``warn`` dubs it anyway but logs and counts it, ``off``
asks ASR for no detection at all (no cost). Under ``warn`` the dub is often usable: Whisper, forced
to the source language, tends to translate foreign speech into it (FLEURS es read as en: "It is
recommended in fact to the travelers…").

A fragment is a mismatch only when ASR heard speech, its detected language differs from the
source's base code ("en-us" is "en"), and the detection is at least ``min_probability`` sure:
an unsure guess is not evidence. Silence never reaches this check.

Default threshold, measured with the embedded Whisper base on every FLEURS clip in
``../shared/data/fleurs`` (en/es/fr/de, 10 each) cut into consecutive 6 s fragments like a live
worker's: 88 fragments with speech. 86 were detected correctly, with probability min 0.588, 10th
percentile ~0.90, median ~0.98. The 2 wrong detections were a 1.2 s tail ("ma hache.", fr read as
en at 0.545) and a fragment holding only a number ("2002", de read as nn at 0.176). Sent to a stream
declared in their own language, at 0.7 none of the 88 is a mismatch; sent to a stream declared in
each of the other three, 255 of 264 are caught (per fragment: 85 of 88; the 0.588 one and the two
wrong detections slip through). 0.5 falsely refuses the "ma hache." tail; 0.6 catches the same 255
with less margin over its 0.545; 0.8 catches 246, 0.9 234. Only en/es/fr/de were measured; closely
related languages (es/gl/pt, no/nn/da) were not, and larger Whisper models will be surer: re-measure
before raising the check to ``refuse`` for other languages or models. Shorter fragments are less
sure: the same clips cut into 2 s pieces gave one false mismatch in 138 at 0.7 (German "Jesus
said" read as en at 0.775).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from livedub.runtime.engines.base import Transcript, base_language
from livedub.runtime.errors import DubbingError, ErrorCode, Stage

LanguageCheck = Literal["off", "warn", "refuse"]

#: See the module docstring for the measurement behind it.
DEFAULT_MIN_PROBABILITY = 0.7


@dataclass(frozen=True, slots=True)
class LanguageMismatch:
    source: str
    detected: str
    probability: float

    def error(self) -> DubbingError:
        """The wire error for ``refuse``: not retryable, the same audio would be refused again."""
        return DubbingError(
            ErrorCode.LANGUAGE_MISMATCH,
            f"speech detected as '{self.detected}' (probability {self.probability:.3f}), "
            f"not the stream's source language '{self.source}'; refused by the language check",
            stage=Stage.ASR,
            retryable=False,
        )


def find_mismatch(source_language: str, transcript: Transcript, min_probability: float) -> LanguageMismatch | None:
    """The mismatch between the declared and the detected language, or None when there is none."""
    if not transcript.has_speech or not transcript.language:
        return None
    source, detected = base_language(source_language), base_language(transcript.language)
    if detected == source or transcript.language_probability < min_probability:
        return None
    return LanguageMismatch(source, detected, transcript.language_probability)
