"""WebVTT caption files from the ``captions`` extension of a stream's ``fragment:processed`` results.

Each result carries cues in milliseconds within its fragment; a file's cue is that plus the
fragment's start in the stream. Speaker labels become WebVTT voice spans (``<v S1>``), which players
show or style per speaker. Text is escaped (``&``, ``<``, ``>``) so a transcript cannot inject tags,
and put on one line (CR and LF both end a WebVTT line) so it cannot end its cue.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class TimedCue:
    start_s: float
    end_s: float
    text: str
    speaker: str | None = None


def timestamp(seconds: float) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


def _escape(text: str) -> str:
    # One line: WebVTT ends a line at CR as well as LF, and a blank line ends the cue.
    return " ".join(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").split())


def render(cues: Iterable[TimedCue]) -> str:
    lines = ["WEBVTT", ""]
    for index, cue in enumerate(sorted(cues, key=lambda c: (c.start_s, c.end_s)), start=1):
        text = _escape(cue.text)
        if not text:
            continue
        # A zero-length cue is legal but invisible; give it the shortest time a reader can see.
        end = max(cue.end_s, cue.start_s + 0.2)
        speaker = _escape(cue.speaker or "")
        lines += [str(index), f"{timestamp(cue.start_s)} --> {timestamp(end)}"]
        lines += [f"<v {speaker}>{text}</v>" if speaker else text, ""]
    return "\n".join(lines)


def stream_cues(results: Sequence[dict[str, Any]], offsets_s: Sequence[float], side: str) -> list[TimedCue]:
    """The ``side`` ("source" or "target") cues of every result, placed at its fragment's offset."""
    cues = []
    for result, offset in zip(results, offsets_s, strict=True):
        captions = result.get("captions") or {}
        for cue in captions.get(side) or []:
            cues.append(
                TimedCue(
                    offset + cue["start_ms"] / 1000, offset + cue["end_ms"] / 1000, cue["text"], cue.get("speaker")
                )
            )
    return cues


def write_stream(
    output: Path, results: Sequence[dict[str, Any]], offsets_s: Sequence[float], languages: tuple[str, str]
) -> list[Path]:
    """``out.<source>.vtt`` and ``out.<target>.vtt`` beside ``output``; returns the paths written."""
    written = []
    for side, language in zip(("source", "target"), languages, strict=True):
        path = output.with_suffix(f".{language}.vtt")
        path.write_text(render(stream_cues(results, offsets_s, side)), encoding="utf-8")
        written.append(path)
    return written
