"""Who speaks in a fragment: per-stream online speaker clustering and a stable voice per speaker.

Opt-in per stream (``stream:init`` ``speakers: "auto"``): a stream that does not ask never loads the
embedding model and runs none of this. Per fragment with speech:

1. the ASR's word spans (speech only, not pauses or music; without word timings its speech span)
   are cut out of the 16 kHz audio and embedded (engines/speaker_embedding.py), with the speaker's median pitch;
2. the embedding joins the nearest speaker whose running centroid is at least ``threshold`` cosine
   away, else founds a new speaker — at most ``max_speakers``; past the bound it joins the nearest;
3. a new speaker is cast once: a built-in voice of the TTS engine of the same gender (from pitch),
   nearest in pitch and not taken by another speaker of the stream; with the ``source`` voice
   (cloning engines) the speaker gets its own reference buffer of recent speech instead.

Fragments are dubbed concurrently, so assignment happens in completion order, under a lock; labels
stay consistent because they come from the centroids, not from arrival order. A fragment with too
little speech to embed (< 1 s) is given to the stream's last speaker: short interjections are more
often a continuation than a new voice, and a wrong guess there costs one fragment's voice.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from livedub.runtime.engines.base import Samples, Transcript, VoiceProfile
from livedub.runtime.engines.speaker_embedding import MIN_SPEECH_S, SAMPLE_RATE, gender_of, median_f0
from livedub.runtime.engines.voices import SourceAudioBuffer, SourceReference

#: Between same-speaker (0.77-0.97) and cross-speaker (0.05-0.50, up to 0.78 for two women in two
#: languages) cosine of 6 s FLEURS pieces, measured by bench/speakers.py.
DEFAULT_THRESHOLD = 0.70
DEFAULT_MAX_SPEAKERS = 4
#: Embedding cost grows with length; 8 s of speech identifies a speaker as well as 30 s.
MAX_EMBED_S = 8.0
#: A speaker's reference buffer skips chunks quieter than this RMS (-80 dBFS): digital silence only.
REFERENCE_SILENCE_RMS = 1e-4
#: Centroid weight cap: the centroid follows slow drift (mood, microphone) instead of freezing.
_MAX_WEIGHT = 20
#: Median pitch (Hz) of each packaged Kokoro voice speaking Spanish, measured by
#: ``bench/speakers.py --voices`` (pYIN); its gender is Kokoro's naming convention (``jf_`` female).
KOKORO_VOICE_F0 = {"jf_alpha": 269.0, "jf_gongitsune": 216.0, "jf_nezumi": 240.0, "jf_tebukuro": 307.0, "jm_kumo": 91.0}


def voice_gender(name: str) -> str | None:
    """Kokoro's convention: the second letter of a voice id is its gender (``af_``, ``jm_``)."""
    if len(name) > 2 and name[2] == "_":
        return {"f": "female", "m": "male"}.get(name[1])
    return None


@dataclass(slots=True)
class Speaker:
    label: str
    centroid: Samples
    weight: int = 1
    f0s: deque[float] = field(default_factory=lambda: deque(maxlen=16))
    gender: str | None = None
    #: The built-in voice cast for this speaker (embedded engines), or None.
    voice: str | None = None
    #: Recent speech of this speaker (the ``source`` voice with a cloning engine), or None.
    reference: SourceAudioBuffer | None = None

    def absorb(self, embedding: Samples, f0: float | None) -> None:
        w = min(self.weight, _MAX_WEIGHT)
        mean = self.centroid * w + embedding
        self.centroid = (mean / (np.linalg.norm(mean) + 1e-12)).astype(np.float32)
        self.weight += 1
        if f0 is not None:
            self.f0s.append(f0)


@dataclass(frozen=True, slots=True)
class SpeakerTurn:
    """The speaker of one fragment, as the pipeline uses it."""

    #: None when the stream's first speech was too short to tell who speaks.
    label: str | None
    voice: VoiceProfile | None = None
    reference: SourceReference | None = None
    similarity: float | None = None


class VoiceCaster:
    """Casts a built-in voice per speaker: same gender, nearest pitch, distinct while voices last."""

    def __init__(self, voices: frozenset[str] | set[str], pitch: dict[str, float] | None = None) -> None:
        self.voices = sorted(voices)
        self.pitch = pitch if pitch is not None else KOKORO_VOICE_F0

    def cast(self, gender: str | None, f0: float | None, taken: set[str]) -> str | None:
        if not self.voices:
            return None
        same = [v for v in self.voices if gender is None or voice_gender(v) in (gender, None)] or self.voices
        free = [v for v in same if v not in taken] or [v for v in self.voices if v not in taken] or same
        # Only an unknown gender or exhausted voices reach the other gender's voices: a stable distinct
        # voice beats a same-gender duplicate, but never when a same-gender voice is still free.
        if f0 is None:
            return free[0]
        return min(free, key=lambda v: (abs(self.pitch.get(v, 0.0) - f0) if self.pitch.get(v) else 1e3, v))


class SpeakerTracker:
    """One stream's speakers (thread-safe: fragments are identified in worker threads)."""

    def __init__(
        self,
        stream_key: str,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        max_speakers: int = DEFAULT_MAX_SPEAKERS,
        caster: VoiceCaster | None = None,
        clone: bool = False,
    ) -> None:
        self.stream_key = stream_key
        self.threshold = threshold
        self.max_speakers = max(1, max_speakers)
        self.caster = caster
        self.clone = clone
        self.speakers: list[Speaker] = []
        self.last: Speaker | None = None
        self._lock = threading.Lock()

    def assign(self, embedding: Samples | None, f0: float | None) -> tuple[Speaker | None, float | None]:
        """The speaker of an embedding (None: too little speech, then the last speaker, if any)."""
        with self._lock:
            if embedding is None:
                return self.last, None
            best, similarity = None, -1.0
            for speaker in self.speakers:
                s = float(np.dot(speaker.centroid, embedding))
                if s > similarity:
                    best, similarity = speaker, s
            if best is None or (similarity < self.threshold and len(self.speakers) < self.max_speakers):
                best, similarity = self._found(embedding, f0), 1.0
            else:
                best.absorb(embedding, f0)
            self.last = best
            return best, similarity

    def _found(self, embedding: Samples, f0: float | None) -> Speaker:
        speaker = Speaker(label=f"S{len(self.speakers) + 1}", centroid=embedding, gender=gender_of(f0))
        if f0 is not None:
            speaker.f0s.append(f0)
        if self.caster is not None:
            taken = {s.voice for s in self.speakers if s.voice}
            speaker.voice = self.caster.cast(speaker.gender, f0, taken)
        if self.clone:
            # Fed only the ASR's word spans (speech_of), so the buffer's silence gate is lowered: at
            # its default (-60 dBFS RMS) a quiet FLEURS reader (peak 0.005, RMS 0.0006) was skipped as
            # silence and her first fragment was cloned from the other speaker's speech.
            speaker.reference = SourceAudioBuffer(
                f"{self.stream_key}#{speaker.label}", SAMPLE_RATE, silence_rms=REFERENCE_SILENCE_RMS
            )
        self.speakers.append(speaker)
        return speaker


def speech_of(audio: Samples, transcript: Transcript, rate: int = SAMPLE_RATE, pad_s: float = 0.1) -> Samples:
    """The fragment's speech only: the ASR's word spans, merged and padded, at most ``MAX_EMBED_S``."""
    spans: list[tuple[int, int]] = []
    for word in transcript.words:
        a, b = max(0, int((word.start - pad_s) * rate)), min(len(audio), int((word.end + pad_s) * rate))
        if b <= a:
            continue
        if spans and a <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], b))
        else:
            spans.append((a, b))
    if not spans:
        # No word timings (a stream without captions): the ASR's speech span, never the music or
        # pause after it, which pulled a returning speaker's similarity under the threshold.
        start = min(int((transcript.speech_start or 0.0) * rate), len(audio))
        end = len(audio) if transcript.speech_end is None else int((transcript.speech_end + pad_s) * rate)
        spans = [(start, max(start, min(end, len(audio))))]
    speech = np.concatenate([audio[a:b] for a, b in spans]) if spans else audio[:0]
    return speech[: int(MAX_EMBED_S * rate)]


def identify(
    embed: Callable[[Samples], Samples],
    tracker: SpeakerTracker,
    audio16k: Samples,
    transcript: Transcript,
    voice: VoiceProfile | None,
    target_language: str,
) -> SpeakerTurn:
    """Embed the fragment's speech, assign its speaker, and return the voice to dub it with (sync)."""
    speech = speech_of(audio16k, transcript)
    enough = len(speech) >= MIN_SPEECH_S * SAMPLE_RATE
    embedding = embed(speech) if enough else None
    f0 = median_f0(speech) if enough else None
    speaker, similarity = tracker.assign(embedding, f0)
    if speaker is None:
        return SpeakerTurn(None, voice, None, None)
    reference = None
    if speaker.reference is not None:
        speaker.reference.append(speech)
        reference = speaker.reference.reference()
    cast: VoiceProfile | None = voice
    if speaker.voice is not None and (voice is None or not voice.name):
        cast = VoiceProfile(
            name=f"speaker-{speaker.label}", language=target_language, gender=speaker.gender, speaker=speaker.voice
        )
    elif speaker.voice is not None and voice is not None and voice.speaker is None and voice.reference_audio is None:
        cast = replace(voice, speaker=speaker.voice)
    return SpeakerTurn(speaker.label, cast, reference, similarity)


def caster_for(tts: Any, target_language: str) -> VoiceCaster | None:
    """A caster over the built-in voices of the engine that speaks ``target_language``, if it has any."""
    engine_for = getattr(tts, "engine_for", None)
    engine = engine_for(target_language) if callable(engine_for) else tts
    voices = getattr(engine, "voices", None)
    return VoiceCaster(frozenset(voices)) if voices else None


class LazyEmbedder:
    """Loads the embedding model on first use, once per process: streams that never ask never pay."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._factory()
            return self._model

    def __call__(self, speech: Samples) -> Samples:
        return self.load().embed(speech)  # type: ignore[no-any-return]
