"""The mix stage: what the dub is laid over, and at what level (stream:init ``mix``).

* ``dub`` — the dub alone over silence (the output before issue 14; the default).
* ``voiceover`` — the original under the dub, ducked by ``duck_db`` while the dub speaks, with
  ``fade_ms`` ramps that finish as the dub's speech starts and begin as it ends: the convention of
  live news interpretation (the original at full level in pauses). numpy only, a few ms a fragment.
* ``background`` — the original's non-speech part (a :class:`Separator`) under the dub.

Levels: the bed (ducked original or separated background) keeps the original's own level, so music
does not jump between fragments with and without speech; the dub is scaled so that the mix has the
input's integrated loudness (BS.1770, :mod:`livedub.runtime.audio.loudness`), and the residue is
trimmed on the dub's gain alone (a few measured secant steps), limited in gain; only a peak ceiling
may lower the whole mix. A fragment in which the dub is
silent is the bed as it is. The stage runs in an engine thread; ``dub`` without loudness matching
returns the dub untouched and costs nothing.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from livedub.runtime.audio import loudness
from livedub.runtime.engines.base import Samples
from livedub.runtime.engines.separation_base import Separator

MixMode = Literal["dub", "voiceover", "background"]
MIX_MODES: tuple[MixMode, ...] = ("dub", "voiceover", "background")

#: Envelope resolution: 10 ms frames are far finer than any fade a listener hears.
_HOP_S = 0.01
#: Word gaps shorter than this keep the original ducked: pumping up between words sounds nervous.
_HOLD_S = 0.3
#: A dub frame counts as speech above this RMS relative to its loudest frame (and absolutely, below).
_RELATIVE_FLOOR_DB = -40.0
_ABSOLUTE_FLOOR = 1e-4
#: The dub's gain over a bed is trimmed until the mix is this close to the input's loudness (LU) ...
_TRIM_LU = 0.1
#: ... in at most this many more loudness measurements (secant steps: two are usually enough).
_TRIM_STEPS = 3


@dataclass(frozen=True, slots=True)
class MixOptions:
    """One stream's mix: the mode and the voiceover's ducking (validated at stream:init)."""

    mode: MixMode = "dub"
    duck_db: float = 12.0
    fade_ms: int = 250


@dataclass(frozen=True, slots=True)
class LoudnessPolicy:
    """Server-wide: whether ``dub`` is matched too, and the limits every match keeps."""

    match_dub: bool = False
    max_gain_db: float = 20.0
    ceiling_db: float = -1.0


@dataclass(slots=True)
class MixResult:
    """The mixed fragment (samples, or samples x channels) and what each step cost."""

    audio: Samples
    timings_ms: dict[str, float] = field(default_factory=dict)
    gain_db: float = 0.0
    input_lufs: float | None = None
    output_lufs: float | None = None


def _frames_2d(audio: Samples) -> Samples:
    return audio[:, None] if audio.ndim == 1 else audio


def _box(values: npt.NDArray[Any], width: int) -> npt.NDArray[np.float64]:
    """Centred moving average over ``width`` frames; the edges extend the first and last value, so a
    dub that speaks across a fragment boundary stays ducked up to it instead of ramping there."""
    if width <= 1:
        return np.asarray(values, dtype=np.float64)
    padded = np.pad(values.astype(np.float64), (width // 2, width - 1 - width // 2), mode="edge")
    sums = np.cumsum(np.concatenate([[0.0], padded]))
    return np.asarray((sums[width:] - sums[:-width]) / width, dtype=np.float64)


def _dilate(mask: npt.NDArray[np.bool_], frames: int) -> npt.NDArray[np.bool_]:
    return _box(mask, 2 * frames + 1) > 1e-9 if frames > 0 else mask


def _erode(mask: npt.NDArray[np.bool_], frames: int) -> npt.NDArray[np.bool_]:
    return _box(mask, 2 * frames + 1) > 1 - 1e-9 if frames > 0 else mask


def speech_frames(dub: Samples, sample_rate: int) -> npt.NDArray[np.bool_]:
    """Per 10 ms frame: whether the dub speaks there, gaps under 300 ms closed."""
    hop = max(1, round(_HOP_S * sample_rate))
    count = math.ceil(len(dub) / hop)
    padded = np.zeros(count * hop, dtype=np.float32)
    padded[: len(dub)] = dub
    rms = np.sqrt(np.mean(np.square(padded.reshape(count, hop), dtype=np.float64), axis=1))
    loudest = float(rms.max(initial=0.0))
    if loudest <= _ABSOLUTE_FLOOR:
        return np.zeros(count, dtype=bool)
    mask = rms > max(_ABSOLUTE_FLOOR, loudest * 10 ** (_RELATIVE_FLOOR_DB / 20))
    half_hold = round(_HOLD_S / _HOP_S / 2)
    return np.asarray(_erode(_dilate(mask, half_hold), half_hold), dtype=bool)


def duck_gain(
    dub: Samples, sample_rate: int, duck_db: float, fade_ms: int, start: float | None = None, end: float | None = None
) -> Samples:
    """Per-sample gain for the original: 1 in the dub's pauses, ``-duck_db`` under its speech.

    The mask is widened by half a fade on each side and then averaged over one fade, so the ramp
    down ends as the dub's speech starts and the ramp up starts as it ends (linear in amplitude).
    ``start`` / ``end``: the gain the neighbouring fragments meet this one at, where known; the
    first / last fade blends to them, so the original does not jump by up to ``duck_db`` in one
    sample at a fragment boundary (a click).
    """
    mask = speech_frames(dub, sample_rate)
    fade = max(1, round(fade_ms / 1000 / _HOP_S))
    ducked = _box(_dilate(mask, fade // 2).astype(np.float64), fade)
    floor = 10 ** (-duck_db / 20)
    per_frame = 1.0 - (1.0 - floor) * np.clip(ducked, 0.0, 1.0)
    hop = max(1, round(_HOP_S * sample_rate))
    centres = (np.arange(len(per_frame)) + 0.5) * hop
    gain: Samples = np.interp(np.arange(len(dub)), centres, per_frame).astype(np.float32)
    ramp = np.minimum(np.arange(len(gain)) / max(1, round(fade_ms / 1000 * sample_rate)), 1.0)
    if start is not None and len(gain):
        gain = (start + (gain - start) * ramp).astype(np.float32)
    if end is not None and len(gain):
        gain = (end + (gain - end) * ramp[::-1]).astype(np.float32)
    return gain


class DuckCarry:
    """Where one voiceover stream's fragments begin and end their ducking, for their neighbours.

    Each fragment's envelope comes from its own dub, so a dub that speaks to its fragment's end and a
    next one that starts in a pause (or the reverse) met at a step of the full ducking depth. The
    fragment mixed second of two neighbours blends into the gain the first one left at their
    boundary: the next fragment starts where the last one ended, and one mixed before its
    predecessor (a pause after speech is answered at once) is met by it. Only two neighbours mixed
    at the same moment miss each other. The last ``_KEEP`` fragments are remembered.
    """

    _KEEP = 16

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._edges: OrderedDict[int, tuple[float, float]] = OrderedDict()

    def neighbours(self, sequence: int) -> tuple[float | None, float | None]:
        """The gain the previous fragment ended at and the one the next started at (None: not mixed)."""
        with self._lock:
            before, after = self._edges.get(sequence - 1), self._edges.get(sequence + 1)
            return (before[1] if before else None), (after[0] if after else None)

    def record(self, sequence: int, first: float, last: float) -> None:
        with self._lock:
            if sequence in self._edges:  # a retry: its neighbours already met the first answer
                return
            self._edges[sequence] = (first, last)
            while len(self._edges) > self._KEEP:
                self._edges.popitem(last=False)


def _dub_gain_db(reference: float | None, bed: float | None, dub: float | None, max_gain_db: float) -> float:
    """Gain that brings bed + dub to the reference loudness, adding powers (uncorrelated signals).

    Where the bed alone is already as loud as the reference, the dub goes 3 LU under it instead of
    vanishing: a loud bed is no reason to lose the dub.
    """
    if reference is None or dub is None:
        return 0.0
    wanted = 10 ** (reference / 10) - (10 ** (bed / 10) if bed is not None else 0.0)
    if wanted <= 0:
        wanted = 10 ** (reference / 10) / 2
    # Only the boost is limited: cutting a loud dub down to a quiet programme is always safe.
    return min(10 * math.log10(wanted) - dub, max_gain_db)


class Mixer:
    """Builds one fragment's output from the original, the fitted dub and the stream's options."""

    def __init__(self, policy: LoudnessPolicy, separator: Separator | None = None) -> None:
        self.policy = policy
        self.separator = separator

    def needed(self, options: MixOptions) -> bool:
        """Whether the stage has anything to do (``dub`` without matching passes the dub through)."""
        return options.mode != "dub" or self.policy.match_dub

    def mix(
        self,
        original: Samples,
        sample_rate: int,
        dub: Samples,
        options: MixOptions,
        position: tuple[DuckCarry, int] | None = None,
    ) -> MixResult:
        """``original``: the fragment (samples, or samples x channels); ``dub``: mono, same length;
        ``position``: the stream's carry and this fragment's sequence number (voiceover)."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        if options.mode == "dub":
            bed = None
        elif options.mode == "voiceover":
            start, end = position[0].neighbours(position[1]) if position is not None else (None, None)
            gain = duck_gain(dub, sample_rate, options.duck_db, options.fade_ms, start, end)
            if position is not None and len(gain):
                position[0].record(position[1], float(gain[0]), float(gain[-1]))
            bed = _frames_2d(original) * gain[:, None]
            timings["voiceover_ms"] = (time.perf_counter() - started) * 1000
        else:
            bed = self._background(_frames_2d(original), sample_rate)
            timings["separation_ms"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        result = self._level(original, sample_rate, dub, bed)
        timings["loudness_ms"] = (time.perf_counter() - started) * 1000
        result.timings_ms = timings
        return result

    def _background(self, frames: Samples, sample_rate: int) -> Samples:
        if self.separator is None:  # stream:init refuses this; reaching here is a bug
            raise RuntimeError("mix 'background' needs a separation engine (SEPARATION_ENGINE)")
        bed = self.separator.background(frames, sample_rate)
        if bed.shape != frames.shape:
            raise RuntimeError(f"separator returned {bed.shape}, expected {frames.shape}")
        return bed

    def _level(self, original: Samples, rate: int, dub: Samples, bed: Samples | None) -> MixResult:
        policy = self.policy
        reference = loudness.integrated_lufs(original, rate, below_gate=True)
        dub_lufs = loudness.integrated_lufs(dub, rate, below_gate=True)
        if bed is None and not policy.match_dub:
            return MixResult(dub)
        if dub_lufs is None:  # the dub is silent here: the bed as it is (the original's own level)
            audio = bed if bed is not None else dub
            return MixResult(np.ascontiguousarray(audio, dtype=np.float32), input_lufs=reference)
        # The dub sits on every channel of the bed; measure it mixed down the way the input is.
        bed_mono = bed.mean(axis=1) if bed is not None else None
        bed_lufs = loudness.integrated_lufs(bed_mono, rate, below_gate=True) if bed_mono is not None else None
        mono_reference = (
            reference if original.ndim == 1 else loudness.integrated_lufs(original.mean(axis=1), rate, below_gate=True)
        )
        gain = _dub_gain_db(mono_reference, bed_lufs, dub_lufs, policy.max_gain_db)
        if bed is not None:
            return self._over_bed(bed, dub, rate, reference, gain, bed_lufs)
        mixed = dub * np.float32(10 ** (gain / 20))
        sent = mixed
        if original.ndim == 2:
            # The dub alone goes out as mono on every channel (audio/codec.py): measure it that way
            # against the input's own channels (a mono mix-down of a one-sided programme is 3 LU low).
            sent = np.repeat(mixed[:, None], original.shape[1], axis=1)
        matched, correction = loudness.match(
            np.ascontiguousarray(sent, dtype=np.float32),
            rate,
            reference,
            max_gain_db=policy.max_gain_db,
            ceiling_db=policy.ceiling_db,
        )
        if sent is not mixed:
            matched = np.ascontiguousarray(matched[:, 0])
        return MixResult(
            matched, gain_db=gain + correction.gain_db, input_lufs=reference, output_lufs=correction.result_lufs
        )

    def _over_bed(
        self, bed: Samples, dub: Samples, rate: int, reference: float | None, gain: float, bed_lufs: float | None
    ) -> MixResult:
        """The dub over the bed at the input's loudness: the residue of the first estimate is trimmed
        on the dub alone (secant steps on its gain), so the bed stays exactly the original where the dub
        pauses and does not step between fragments; only the peak ceiling may lower the whole mix."""
        policy = self.policy

        def mixed_at(gain_db: float) -> Samples:
            return np.ascontiguousarray(bed + (dub * np.float32(10 ** (gain_db / 20)))[:, None], dtype=np.float32)

        def error(gain_db: float) -> float | None:
            measured = loudness.integrated_lufs(mixed_at(gain_db), rate, below_gate=True)
            return None if reference is None or measured is None else reference - measured

        best, best_error = gain, error(gain)
        # Where the bed alone reaches the reference no dub gain can meet it: keep the estimate (3 LU under).
        reachable = reference is not None and (bed_lufs is None or bed_lufs < reference - _TRIM_LU)
        if best_error is not None and reachable:
            previous, previous_error = gain, best_error
            current = min(gain + best_error, policy.max_gain_db)
            for _ in range(_TRIM_STEPS):
                if abs(best_error) <= _TRIM_LU or current == previous:
                    break
                current_error = error(current)
                if current_error is None:
                    break
                if abs(current_error) < abs(best_error):
                    best, best_error = current, current_error
                if current_error == previous_error:
                    break
                step = current - current_error * (current - previous) / (current_error - previous_error)
                previous, previous_error = current, current_error
                current = min(step, policy.max_gain_db)
        audio = mixed_at(best)
        top = loudness.peak(audio, rate)
        cut = min(0.0, policy.ceiling_db - 20 * math.log10(top)) if top > 0 else 0.0
        if cut < 0:
            audio = (audio * np.float32(10 ** (cut / 20))).astype(np.float32, copy=False)
        output = None if reference is None or best_error is None else reference - best_error + cut
        return MixResult(audio, gain_db=best + cut, input_lufs=reference, output_lufs=output)
