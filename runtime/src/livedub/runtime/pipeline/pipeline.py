"""One fragment through ASR → translation → TTS → duration match (→ mix), each stage bounded in time.

Every engine call runs in the process's worker threads (``run_in_executor``): nothing here blocks
the event loop. A stage that overruns its timeout fails the fragment with ``TIMEOUT`` at that stage;
Python cannot kill a thread, so the engine call finishes in the background and its result is
dropped (the thread pool is sized with that in mind). Any failure becomes a ``DubbingError`` with
the stage stamped on it, in exactly one place (:meth:`DubbingPipeline._stage`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np

from livedub.runtime.audio.codec import DecodedAudio, resample
from livedub.runtime.engines.base import (
    ASR_SAMPLE_RATE,
    Engines,
    LengthBudget,
    Samples,
    Speech,
    Transcript,
    TranslationOptions,
    VoiceProfile,
)
from livedub.runtime.errors import DubbingError, ErrorCode, Stage
from livedub.runtime.metrics import Metrics
from livedub.runtime.pipeline import captions as cap
from livedub.runtime.pipeline import slotfit
from livedub.runtime.pipeline import speakers as spk
from livedub.runtime.pipeline.batcher import AsrBatcher
from livedub.runtime.pipeline.duration import DurationPolicy, Status, fit, trim_silence, variance
from livedub.runtime.pipeline.language import DEFAULT_MIN_PROBABILITY, LanguageCheck, find_mismatch
from livedub.runtime.pipeline.mix import DuckCarry, Mixer, MixOptions
from livedub.runtime.pipeline.prefit import SpeakingRate
from livedub.runtime.pipeline.tempo import Slot, too_fast

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StageTimeouts:
    asr_s: float
    translation_s: float
    tts_s: float
    duration_match_s: float
    mix_s: float = 10.0


@dataclass(frozen=True, slots=True)
class FragmentJob:
    """What the pipeline needs about one fragment; the session fills in the context fields."""

    audio: DecodedAudio
    source_language: str
    target_language: str
    voice: VoiceProfile | None = None
    translation_options: TranslationOptions | None = None
    previous_transcript: str = ""
    #: Recent speech of this stream's speaker, for the ``source`` voice (cloning engines only).
    source_reference: object | None = None
    #: The stream's language check (pipeline/language.py); "off" asks ASR for no detection.
    language_check: LanguageCheck = "off"
    #: The programme's terms: primed into ASR and given to translation as context.
    domain_hints: tuple[str, ...] = ()
    #: What the dub is laid over (pipeline/mix.py); ``dub`` with no loudness matching skips the stage.
    mix: MixOptions = field(default_factory=MixOptions)
    #: Voiceover: the stream's ducking carry and this fragment's sequence number (pipeline/mix.py).
    mix_position: tuple[DuckCarry, int] | None = None
    #: The stream's speakers (stream:init ``speakers: "auto"``), or None: no speaker stage at all.
    speakers: spk.SpeakerTracker | None = None
    #: Build timed caption cues (stream:init ``captions``).
    captions: bool = False


@dataclass(slots=True)
class FragmentOutcome:
    """A finished fragment: dubbed samples at the input rate, texts, grading, timings, or an error."""

    status: Status
    audio: Samples | None = None
    sample_rate: int = 0
    transcript: str = ""
    translation: str = ""
    original_s: float = 0.0
    dubbed_s: float = 0.0
    variance: float = 0.0
    speed_ratio: float = 1.0
    timings_ms: dict[str, int] = field(default_factory=dict)
    error: DubbingError | None = None
    speaker: str | None = None
    #: The built-in voice the speaker was cast with (speakers on, embedded engines), else None.
    speaker_voice: str | None = None
    captions: cap.FragmentCaptions | None = None
    #: Which line was spoken (pipeline/slotfit.py: "first", "shorter", "tighter", "rule-based";
    #: "post-synthesis" for the rewrite after synthesis).
    translation_origin: str = "first"


class DubbingPipeline:
    def __init__(
        self,
        engines: Engines,
        executor: Executor,
        *,
        timeouts: StageTimeouts,
        policy: DurationPolicy,
        metrics: Metrics,
        asr_batch_window_s: float = 0.0,
        asr_max_batch: int = 8,
        language_min_probability: float = DEFAULT_MIN_PROBABILITY,
        translation_budget: bool = True,
        mixer: Mixer | None = None,
        speaker_embedder: spk.LazyEmbedder | None = None,
    ) -> None:
        self.engines = engines
        self.mixer = mixer
        #: Loaded on the first stream that asks for speakers (pipeline/speakers.py).
        self.speaker_embedder = speaker_embedder
        #: Ask the translator for text that fits the fragment (MT_BUDGET); engines without it ignore it.
        self.translation_budget = translation_budget
        self.executor = executor
        self.timeouts = timeouts
        self.policy = policy
        self.metrics = metrics
        self.language_min_probability = language_min_probability

        def count_call(size: int) -> None:
            metrics.asr_model_calls.inc()
            metrics.asr_batch_size.observe(size)

        self.speaking_rate = SpeakingRate()
        # With batching on, ASR gets a thread of its own: a batched call must never queue behind CPU
        # work (decode, translation, synthesis) in the shared pool while the GPU idles.
        self._asr_executor = ThreadPoolExecutor(1, thread_name_prefix="asr") if asr_batch_window_s > 0 else None
        self.asr = AsrBatcher(
            engines.asr,
            self._asr_executor or executor,
            window_s=asr_batch_window_s,
            max_batch=asr_max_batch,
            on_call=count_call,
        )
        # Engines synthesise one call at a time: fragments wait here, not on the engine's lock inside
        # the TTS stage timeout, where they would also park a pool thread each.
        self._tts_slots = asyncio.Semaphore(max(1, engines.tts.max_concurrency))
        metrics.asr_waiting.set_function(lambda: self.asr.waiting)

    def close(self) -> None:
        if self._asr_executor is not None:
            self._asr_executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    async def _start_synthesis(self, call: Callable[[], Speech]) -> asyncio.Future[Speech]:
        """Start one TTS call once a TTS slot is free; the slot is held until the engine thread returns.

        Waiting for the slot happens here, in front of the stage's timer. The slot is released from
        the thread's own completion, not when a timeout or a deadline cancels the waiter: a cancelled
        call keeps running and keeps the engine's lock, and the next fragment must queue here, not on
        that lock inside its own timer.
        """
        loop = asyncio.get_running_loop()
        await self._tts_slots.acquire()
        try:
            future = self.executor.submit(call)
        except BaseException:
            self._tts_slots.release()
            raise
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._tts_slots.release))
        return asyncio.wrap_future(future)

    def _with_translation_deadline(self, options: TranslationOptions) -> TranslationOptions:
        """``options`` with the moment the translation stage's timer stops waiting. Taken as the stage
        starts, not inside the worker's lambda: a call queued behind other work would get its whole
        timeout again from when a thread picks it up, past the moment nobody waits any more."""
        return replace(options, deadline=time.monotonic() + self.timeouts.translation_s)

    async def _stage(self, stage: Stage, timeout_s: float, work: Awaitable[T], timings: dict[str, int], key: str) -> T:
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(work, timeout_s)
        except TimeoutError as exc:
            raise DubbingError(
                ErrorCode.TIMEOUT,
                f"{stage.value} processing exceeded timeout of {int(timeout_s * 1000)}ms",
                stage=stage,
            ) from exc
        except DubbingError as exc:
            raise exc.at(stage) from None
        except MemoryError as exc:
            raise DubbingError(
                ErrorCode.INTERNAL, f"{stage.value} ran out of memory", stage=stage, retryable=True
            ) from exc
        except Exception as exc:
            # CUDA OOM arrives as a RuntimeError; it is load, not a bad fragment: retryable.
            oom = "out of memory" in str(exc).lower()
            log.exception("engine failure", extra={"stage": stage.value})
            raise DubbingError(
                ErrorCode.INTERNAL,
                f"{stage.value} failed: {type(exc).__name__}: {exc}"[:300],
                stage=stage,
                retryable=oom,
            ) from exc
        finally:
            timings[key] = int((time.perf_counter() - started) * 1000)

    async def process(self, job: FragmentJob, on_stage: Callable[[Stage], None] | None = None) -> FragmentOutcome:
        """Dub one fragment. ``on_stage`` hears each stage as it starts (a deadline names where it hit)."""
        timings: dict[str, int] = {}
        on_stage = on_stage or (lambda stage: None)
        audio = job.audio
        original_s = audio.duration_s
        target_samples = len(audio.samples)

        asr_input = await self._run(lambda: resample(audio.samples, audio.sample_rate, ASR_SAMPLE_RATE))
        on_stage(Stage.ASR)
        transcript: Transcript = await self._stage(
            Stage.ASR,
            self.timeouts.asr_s,
            self.asr.transcribe(
                asr_input,
                language=job.source_language,
                prompt=job.previous_transcript or None,
                detect_language=job.language_check != "off",
                hints=", ".join(job.domain_hints) or None,
                words=job.captions,  # word-timed source cues; costs nothing for streams without captions
            ),
            timings,
            "asr_ms",
        )
        self.metrics.asr_seconds.observe(timings["asr_ms"] / 1000)
        if not transcript.has_speech:
            # Live streams are full of pauses: answer at once with silence of the same length.
            timings.update(translation_ms=0, tts_ms=0, duration_match_ms=0)
            silence = np.zeros(target_samples, dtype=np.float32)
            return FragmentOutcome(
                status="success",
                audio=await self._mix(job, silence, timings, on_stage),
                sample_rate=audio.sample_rate,
                original_s=original_s,
                dubbed_s=original_s,
                timings_ms=timings,
                captions=cap.FragmentCaptions((), ()) if job.captions else None,
            )
        if job.language_check != "off":
            self._check_language(job, transcript)

        # Who speaks runs beside translation (both in worker threads): it adds no latency unless it is slower.
        speaker_task = self._identify(job, asr_input, transcript, timings) if job.speakers is not None else None
        engines = self.engines
        tts_name, language = engines.tts.name, job.target_language
        # The slot is the source's speech span, not the whole fragment: the budget, the speed
        # pre-fit and the stretch all aim at it (pipeline/tempo.py), and pauses stay silent.
        slot = Slot.of(transcript, original_s)
        options = replace(
            job.translation_options or TranslationOptions(),
            budget=self.speaking_rate.budget(tts_name, language, slot.budget_s) if self.translation_budget else None,
        )
        on_stage(Stage.TRANSLATION)
        timed = self._with_translation_deadline(options)
        translation: str = await self._stage(
            Stage.TRANSLATION,
            self.timeouts.translation_s,
            self._run(
                lambda: engines.translator.translate(
                    transcript.text,
                    source=job.source_language,
                    target=job.target_language,
                    context=job.previous_transcript or None,
                    options=timed,
                )
            ),
            timings,
            "translation_ms",
        )
        if not translation.strip():
            raise DubbingError(ErrorCode.INTERNAL, "translation returned no text", stage=Stage.TRANSLATION)
        origin = "first"
        if self.translation_budget:
            translation, origin = await self._fit(job, transcript.text, translation, options, slot, timings)
        self.metrics.translation_seconds.observe(timings["translation_ms"] / 1000)

        voice, reference, speaker = job.voice, job.source_reference, None
        if speaker_task is not None:
            turn = await speaker_task
            # A known speaker is cloned from its own speech only (none yet: the engine's default
            # voice), never from the stream's buffer, which holds the other speakers too.
            reference = turn.reference if turn.label is not None else reference
            voice, speaker = turn.voice, turn.label
        speed = self.speaking_rate.speed_for(tts_name, language, translation, slot)
        extra = {"reference": reference} if reference is not None else {}
        on_stage(Stage.TTS)
        synthesis = await self._start_synthesis(
            lambda: engines.tts.synthesize(translation, language=language, voice=voice, speed=speed, **extra)
        )
        speech = await self._stage(Stage.TTS, self.timeouts.tts_s, synthesis, timings, "tts_ms")
        self.metrics.tts_seconds.observe(timings["tts_ms"] / 1000)
        voiced_s = len(trim_silence(speech.audio, speech.sample_rate)) / max(1, speech.sample_rate)
        self.speaking_rate.observe(tts_name, language, translation, voiced_s, speed)
        if self.translation_budget and too_fast(self.policy.tempo(voiced_s * speed, slot)):
            # The line would play faster than natural: one shorter rewrite, where the engine can.
            shorter = await self._shorter(job, translation, voiced_s * speed, slot, timings, voice, extra)
            if shorter is not None:
                (translation, speech, speed), origin = shorter, "post-synthesis"

        on_stage(Stage.DURATION_MATCH)
        fitted, tempo = await self._stage(
            Stage.DURATION_MATCH,
            self.timeouts.duration_match_s,
            self._run(
                lambda: self._match(speech.audio, speech.sample_rate, audio.sample_rate, target_samples, slot, speed)
            ),
            timings,
            "duration_match_ms",
        )
        self.metrics.duration_match_seconds.observe(timings["duration_match_ms"] / 1000)

        captions = None
        if job.captions:
            started = time.perf_counter()
            captions = await self._run(
                lambda: cap.build(
                    transcript.words,
                    translation,
                    fitted,
                    audio.sample_rate,
                    speaker,
                    transcript=transcript.text,
                    source=asr_input,
                    source_rate=ASR_SAMPLE_RATE,
                    speech_start=slot.start_s,
                )
            )
            timings["captions_ms"] = int((time.perf_counter() - started) * 1000)
        dubbed_s = len(fitted) / audio.sample_rate
        fitted = await self._mix(job, fitted, timings, on_stage)
        spread = variance(dubbed_s, original_s)
        self.metrics.variance.observe(spread)
        self.metrics.speed_ratio.observe(tempo)
        return FragmentOutcome(
            status=self.policy.grade(spread),
            audio=fitted,
            sample_rate=audio.sample_rate,
            transcript=transcript.text,
            translation=translation,
            original_s=original_s,
            dubbed_s=dubbed_s,
            variance=spread,
            speed_ratio=tempo,  # the tempo the speech plays at: native TTS speed times the stretch
            timings_ms=timings,
            speaker=speaker,
            speaker_voice=voice.speaker if speaker_task is not None and voice is not None else None,
            captions=captions,
            translation_origin=origin,
        )

    async def _mix(
        self, job: FragmentJob, dub: Samples, timings: dict[str, int], on_stage: Callable[[Stage], None]
    ) -> Samples:
        """The dub over the stream's bed at the input's loudness; the dub itself when nothing is asked."""
        mixer = self.mixer
        if mixer is None or not mixer.needed(job.mix):
            return dub
        audio = job.audio
        on_stage(Stage.MIX)
        result = await self._stage(
            Stage.MIX,
            self.timeouts.mix_s,
            self._run(lambda: mixer.mix(audio.original, audio.sample_rate, dub, job.mix, job.mix_position)),
            timings,
            "mix_ms",
        )
        timings.update({key: round(value) for key, value in result.timings_ms.items()})
        return result.audio

    def _identify(
        self, job: FragmentJob, audio16k: Samples, transcript: Transcript, timings: dict[str, int]
    ) -> asyncio.Task[spk.SpeakerTurn]:
        """Start telling who speaks; a failure there costs the label, never the fragment.

        The task never raises (a failed fragment elsewhere just leaves it to finish unawaited).
        """
        tracker, embed = job.speakers, self.speaker_embedder
        assert tracker is not None

        async def run() -> spk.SpeakerTurn:
            started = time.perf_counter()
            try:
                if embed is None:
                    raise RuntimeError("no speaker embedding model configured")
                return await self._run(
                    lambda: spk.identify(embed, tracker, audio16k, transcript, job.voice, job.target_language)
                )
            except Exception:
                log.exception("speaker identification failed; dubbing with the stream's voice")
                return spk.SpeakerTurn(None, job.voice, None, None)
            finally:
                timings["speaker_ms"] = int((time.perf_counter() - started) * 1000)

        return asyncio.ensure_future(run())

    async def _fit(
        self,
        job: FragmentJob,
        text: str,
        translation: str,
        options: TranslationOptions,
        slot: Slot,
        timings: dict[str, int],
    ) -> tuple[str, str]:
        """The line chosen to fit the slot before synthesis (pipeline/slotfit.py) and where it came from.

        Its time is the translation's. A failure keeps the first translation: it is good, only fast.
        """
        engines, language = self.engines, job.target_language
        rate = self.speaking_rate

        def predict(line: str) -> float:
            return self.policy.tempo(rate.natural_seconds(engines.tts.name, language, line), slot)

        timed = self._with_translation_deadline(options)
        try:
            choice = await self._stage(
                Stage.TRANSLATION,
                self.timeouts.translation_s,
                self._run(
                    lambda: slotfit.fit_line(
                        engines.translator,
                        translation,
                        source_text=text,
                        source=job.source_language,
                        target=language,
                        options=timed,
                        slot=slot,
                        seconds_per_char=rate.seconds_per_char(engines.tts.name, language),
                        predict=predict,
                    )
                ),
                timings,
                "fit_ms",
            )
        except DubbingError as exc:
            log.warning("slot fit failed; keeping the first translation", extra={"error": exc.message})
            return translation, "first"
        finally:
            timings["translation_ms"] += timings.pop("fit_ms", 0)
        self.metrics.translation_fit.labels(origin=choice.origin).inc()
        return choice.text, choice.origin

    async def _shorter(
        self,
        job: FragmentJob,
        translation: str,
        natural_s: float,
        slot: Slot,
        timings: dict[str, int],
        voice: VoiceProfile | None,
        extra: dict[str, object],
    ) -> tuple[str, Speech, float] | None:
        """A shorter rewrite of ``translation`` and its speech, or None (the engine cannot, or it failed).

        Its time is added to the translation and TTS timings. A failure here is not the fragment's:
        the first translation is still good, only fast.
        """
        engines, language = self.engines, job.target_language
        # The characters the fragment holds at natural tempo, from this very line's measured rate.
        budget = LengthBudget(slot.fragment_s, max(8, int(len(translation) * slot.fragment_s / natural_s)))
        # The stream's fixed terms: a rewrite that drops one is refused (the engine keeps those in the line).
        terms = tuple(t for _, t in (job.translation_options or TranslationOptions()).glossary)
        try:
            rewrite = await self._stage(
                Stage.TRANSLATION,
                self.timeouts.translation_s,
                self._run(lambda: engines.translator.shorten(translation, target=language, budget=budget, keep=terms)),
                timings,
                "rewrite_ms",
            )
            if not rewrite:
                return None
            speed = self.speaking_rate.speed_for(engines.tts.name, language, rewrite, slot)
            synthesis = await self._start_synthesis(
                lambda: engines.tts.synthesize(rewrite, language=language, voice=voice, speed=speed, **extra)
            )
            speech = await self._stage(Stage.TTS, self.timeouts.tts_s, synthesis, timings, "resynthesis_ms")
        except DubbingError as exc:
            log.warning("shorter rewrite failed; keeping the first translation", extra={"error": exc.message})
            return None
        finally:
            timings["translation_ms"] += timings.pop("rewrite_ms", 0)
            timings["tts_ms"] += timings.pop("resynthesis_ms", 0)
        self.metrics.translation_rewrites.inc()
        return rewrite, speech, speed

    def _check_language(self, job: FragmentJob, transcript: Transcript) -> None:
        """Apply the stream's language check to a transcript with speech (raises to refuse)."""
        mismatch = find_mismatch(job.source_language, transcript, self.language_min_probability)
        if mismatch is None:
            return
        self.metrics.language_mismatches.labels(source=mismatch.source, detected=mismatch.detected).inc()
        log.warning(
            "language mismatch",
            extra={
                "source": mismatch.source,
                "detected": mismatch.detected,
                "probability": round(mismatch.probability, 3),
                "action": job.language_check,
            },
        )
        if job.language_check == "refuse":
            raise mismatch.error()

    def _match(
        self, speech: Samples, speech_rate: int, out_rate: int, target_samples: int, slot: Slot, speed: float
    ) -> tuple[Samples, float]:
        """Trim, resample, stretch to the slot's tempo, place at the speech start; returns the tempo."""
        voiced = trim_silence(speech, speech_rate)
        voiced = resample(voiced, speech_rate, out_rate)
        if voiced.size == 0:
            return np.zeros(target_samples, dtype=np.float32), 1.0
        # What the line takes at tempo 1.0: the TTS said it at ``speed`` already.
        natural_s = len(voiced) / out_rate * speed
        stretch, tempo = self.policy.stretch_for(natural_s, speed, slot)
        if stretch != 1.0:
            voiced = self.engines.stretcher.stretch(voiced, out_rate, stretch)
        return fit(voiced, out_rate, target_samples, slot.start_s), tempo
