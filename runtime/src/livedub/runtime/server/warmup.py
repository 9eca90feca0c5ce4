"""Warm-up: one real fragment through every stage before ``/ready`` turns 200.

The first inference of each engine pays one-off costs (ONNX Runtime and CTranslate2 allocate their
buffers and pick kernels, Rubber Band and soxr build their tables, Python modules load lazily): the
first fragment after start-up took 1.35x the steady-state time (issue 11, item 10). Kubernetes
sends traffic once the pod is ready, so the pod pays that before, on a built-in sample.

The sample needs no data file: the TTS engine itself speaks a short English sentence, which then
goes through the real pipeline (ASR -> translation -> TTS -> duration match) like a fragment would,
towards a target the installed engines support. A failure is logged, never fatal: a pod that can
load its models but not warm them still serves (each fragment reports its own error). The sample's
stage timings land in the stage histograms like any fragment's (one observation per stage).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from livedub.runtime.audio.codec import DecodedAudio, resample
from livedub.runtime.engines.base import ASR_SAMPLE_RATE, Engines
from livedub.runtime.pipeline.pipeline import DubbingPipeline, FragmentJob

log = logging.getLogger(__name__)

#: Long enough that ASR decodes words and TTS speaks a real sentence; short enough to cost ~2 s.
SAMPLE_TEXT = "Good evening, and welcome to the news."
SOURCE = "en"
#: Preferred targets, most common first; any other supported target will do.
_TARGETS = ("es", "fr", "de", "it", "pt", "ca")


@dataclass(slots=True)
class WarmUp:
    """What the warm-up ran: total seconds and the pipeline's per-stage timings."""

    seconds: float = 0.0
    target: str | None = None
    stages_ms: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def _target(engines: Engines) -> str | None:
    if SOURCE not in engines.asr.languages or SOURCE not in engines.tts.languages:
        return None
    speakable = engines.tts.languages
    candidates = [*_TARGETS, *sorted(speakable)]
    usable = (t for t in candidates if t != SOURCE and t in speakable and engines.translator.supports(SOURCE, t))
    return next(usable, None)


async def warm_up(engines: Engines, pipeline: DubbingPipeline) -> WarmUp:
    """Dub the built-in sample once; returns what ran (``error`` set if it could not)."""
    started = time.perf_counter()
    result = WarmUp(target=_target(engines))
    if result.target is None:
        result.error = "no English source with a supported target: nothing to warm through"
        return result
    try:
        speech = await asyncio.to_thread(engines.tts.synthesize, SAMPLE_TEXT, language=SOURCE)
        samples = resample(np.asarray(speech.audio, dtype=np.float32), speech.sample_rate, ASR_SAMPLE_RATE)
        # Lead-in silence like a real fragment's, so VAD and the speech-start placement run too.
        fragment = np.concatenate([np.zeros(ASR_SAMPLE_RATE // 2, np.float32), samples])
        job = FragmentJob(DecodedAudio(fragment, ASR_SAMPLE_RATE, 1), SOURCE, result.target)
        outcome = await pipeline.process(job)
        result.stages_ms = dict(outcome.timings_ms)
    except Exception as exc:  # never fatal: the pod still serves, and the log says why
        log.exception("warm-up failed")
        result.error = f"{type(exc).__name__}: {exc}"[:300]
    result.seconds = time.perf_counter() - started
    return result
