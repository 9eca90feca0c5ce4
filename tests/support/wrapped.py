"""The real ASR engine behind a test's own twist (an injected fault, a reported device)."""

from __future__ import annotations

from livedub.runtime.engines.base import Samples, SpeechRecognizer, Transcript


class WrappedASR(SpeechRecognizer):
    """Delegates to ``inner``; ``transcribe_many`` stays the base one, so every fragment passes
    through :meth:`transcribe`, where subclasses add their twist."""

    def __init__(self, inner: SpeechRecognizer) -> None:
        self.inner, self.name = inner, inner.name

    @property
    def languages(self) -> frozenset[str]:
        return self.inner.languages

    def transcribe(
        self, audio: Samples, *, language: str, prompt: str | None = None, detect_language: bool = False
    ) -> Transcript:
        return self.inner.transcribe(audio, language=language, prompt=prompt, detect_language=detect_language)
