"""The source-separation interface: the programme's non-speech part (music and effects) of a fragment.

``mix: "background"`` lays the dub over what is left of the original once its speech is removed.
Backends differ in what they need (TensorFlow in a venv of its own, a GPU and mounted weights), so
each lives in its own module behind this interface and the pipeline only sees :class:`Separator`.
A separator is called from the engine threads, never the event loop, and serves one call at a time
(one model per process).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from livedub.runtime.engines.base import Samples


class SeparationError(RuntimeError):
    """The backend could not separate this fragment (its process died, bad output)."""


class Separator(ABC):
    name: str

    @abstractmethod
    def background(self, frames: Samples, sample_rate: int) -> Samples:
        """The non-speech part of ``frames`` (samples x channels, float32), same shape and rate."""

    def warm_up(self) -> None:  # noqa: B027 - optional hook: most backends load lazily on the first call
        """Pay the first call's one-off costs (graph building, allocation) before traffic arrives."""

    def close(self) -> None:  # noqa: B027 - optional hook: only process-backed separators hold anything
        """Release the model (and its process)."""
