"""The tempo a dub is played at: fit the source's speech span, not the whole fragment.

A dubbing engineer fits a line to the span the original speaker talks in, and leaves it alone when
it already fits. Stretching a short line out to fill a whole 6 s fragment (what a plain
``natural / fragment`` rate does) slows speech the listener hears as dragging; the pauses belong to
the programme, and silence is the honest filler. The rules, given the line's natural length
(seconds at tempo 1.0) and the :class:`Slot`:

* Shorter than the span: natural tempo, placed at the speech start, silence after it. Only a small
  gap (the line at least :data:`GAP_CLOSE_MIN` of the span) is closed by a gentle slow-down.
* Longer than the span: sped up towards the span, but never past :data:`SPAN_SPEEDUP_MAX`; the rest
  spills into the pause after the speech, which is still inside the fragment.
* Longer than the whole fragment even so: sped up as far as needed to fit the fragment, up to the
  policy's clamp (``SPEED_RATIO_MAX``); beyond it the overrun is graded as before (duration.py).

Every fragment keeps its exact sample count whenever the dub fits (duration.fit places it); the
reported ``speed_ratio`` is the tempo these rules chose, applied to the speech only, silence aside.
"""

from __future__ import annotations

from dataclasses import dataclass

from livedub.runtime.engines.base import Transcript

#: A line at least this share of the span is slowed to close the gap; a shorter one is padded.
GAP_CLOSE_MIN = 0.92
#: How far a line is sped up to stay within the span before it may spill into the pause after it.
SPAN_SPEEDUP_MAX = 1.1
#: The band listeners hear as natural speech (the issue's target: 0.85-1.2).
NATURAL_BAND = (0.85, 1.2)


@dataclass(frozen=True, slots=True)
class Slot:
    """Where the source speaks in its fragment: ``start_s`` .. ``start_s + span_s`` of ``fragment_s``."""

    start_s: float
    span_s: float
    fragment_s: float

    @classmethod
    def of(cls, transcript: Transcript, fragment_s: float) -> Slot:
        """The slot from ASR's speech timestamps; without them, the whole fragment."""
        start = transcript.speech_start
        if start is None and transcript.words:
            start = transcript.words[0].start
        start = min(max(0.0, start or 0.0), fragment_s)
        end = transcript.speech_end
        if end is None and transcript.words:
            end = transcript.words[-1].end
        if end is None or end <= start:
            end = fragment_s
        return cls(start, min(end, fragment_s) - start, fragment_s)

    @property
    def budget_s(self) -> float:
        """The seconds a translation may take at natural tempo: the span plus the allowed speed-up."""
        return min(self.fragment_s, self.span_s * SPAN_SPEEDUP_MAX) if self.span_s > 0 else self.fragment_s


def tempo_for(natural_s: float, slot: Slot, fastest: float) -> float:
    """The tempo (1.0 natural, 1.2 = 20 % faster) to play a line of ``natural_s`` in ``slot``."""
    if natural_s <= 0 or slot.fragment_s <= 0:
        return 1.0
    span = slot.span_s if slot.span_s > 0 else slot.fragment_s
    to_span = natural_s / span
    if to_span <= 1.0:
        return to_span if to_span >= GAP_CLOSE_MIN else 1.0
    # The fragment is the hard limit (fit() slides a long line earlier to use all of it).
    to_fragment = natural_s / slot.fragment_s
    return float(min(max(min(to_span, SPAN_SPEEDUP_MAX), to_fragment), fastest))


def natural(tempo: float) -> bool:
    return NATURAL_BAND[0] <= tempo <= NATURAL_BAND[1]


def too_fast(tempo: float) -> bool:
    """Past the natural band: the line asks for a shorter rewrite (the only side the rules can leave:
    a short line is padded with silence, never slowed below GAP_CLOSE_MIN)."""
    return tempo > NATURAL_BAND[1]
