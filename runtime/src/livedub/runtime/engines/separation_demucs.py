"""Demucs separation (``demucs`` 4.1, MIT), the GPU-class backend: weights mounted, never downloaded.

Why it is built this way:

* **In process.** Demucs needs torch, which the production install already has for XTTS
  (``hack/install.sh VENV production``), so unlike Spleeter it needs no venv of its own.
  torch and demucs are imported when the engine is chosen, never at module level.
* **The background is every stem but** ``vocals``, summed (htdemucs: drums + bass + other), each
  block normalised the way demucs's own API does (zero mean, unit deviation of the mono mix-down)
  and scaled back, so the model sees the level it was trained at whatever the fragment's level.
* **Bounded memory.** ``apply_model`` keeps every stem of its whole input (4 stems x channels x
  samples); the input is therefore cut into blocks of ``block_s`` seconds at most (30 s: about
  42 MB of stems at 44.1 kHz stereo) that overlap by ``fade_s`` and are cross-faded, and inside a block
  ``apply_model`` runs the model on its own training segment (7.8 s for htdemucs) with 25 % overlap.
  So a long input costs its own input and output arrays plus one block, not four stems of it all.
* **One call at a time** (a lock): a torch module is not safe to run concurrently and on one GPU
  parallel calls would only contend. Called from the engine threads, never the event loop.
* ``SEPARATION_DEVICE=cuda`` puts the model on the GPU; ``apply_model`` moves each segment there and
  the stems back, so host memory holds the arrays and the GPU one segment's activations.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from livedub.runtime.engines.base import Samples
from livedub.runtime.engines.separation_base import SeparationError, Separator
from livedub.runtime.engines.separation_demucs_checkpoint import load_demucs
from livedub.runtime.engines.separation_frames import separate_in_groups
from livedub.runtime.engines.torch_device import resolve_device
from livedub.runtime.errors import EngineError, ErrorCode, ModelLoadError, Stage

log = logging.getLogger(__name__)

#: Longest stretch handed to ``apply_model`` at once (memory: every stem of it is kept).
BLOCK_S = 30.0
#: Cross-fade between consecutive blocks (only inputs longer than a block have any).
FADE_S = 1.0
#: Overlap between the model's own segments inside a block (demucs's default).
OVERLAP = 0.25


def blocks(length: int, block: int, fade: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of blocks covering ``length`` samples, each overlapping the previous by ``fade``."""
    start = 0
    while True:
        end = min(length, start + block)
        yield start, end
        if end >= length:
            return
        start = end - fade


def block_weights(start: int, end: int, length: int, fade: int) -> np.ndarray:
    """Linear cross-fade weights of one block: consecutive blocks' weights sum to one."""
    weight = np.ones(end - start, dtype=np.float32)
    if start > 0:
        weight[:fade] = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
    if end < length:
        weight[-fade:] = 1.0 - np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
    return weight


class DemucsSeparator(Separator):
    name = "demucs"

    def __init__(
        self, model_path: Path | None, *, device: str = "auto", block_s: float = BLOCK_S, fade_s: float = FADE_S
    ) -> None:
        try:
            import torch
            from demucs.apply import apply_model
        except ImportError as exc:
            raise ModelLoadError(
                f"SEPARATION_ENGINE=demucs needs torch and demucs (hack/install.sh VENV production): {exc}"
            ) from exc
        self._torch = torch
        self._apply = apply_model
        self.device = resolve_device(torch, device, "SEPARATION_DEVICE")
        started = time.perf_counter()
        self._model: Any = load_demucs(model_path).to(self.device)
        self.sources: list[str] = list(self._model.sources)
        self.sample_rate = int(self._model.samplerate)
        self.channels = int(self._model.audio_channels)
        self._background = [i for i, source in enumerate(self.sources) if source != "vocals"]
        self.block = int(block_s * self.sample_rate)
        self.fade = min(int(fade_s * self.sample_rate), self.block // 2)
        self._lock = threading.Lock()
        log.info(
            "demucs loaded",
            extra={
                "path": str(model_path),
                "device": self.device,
                "sources": self.sources,
                "seconds": round(time.perf_counter() - started, 2),
            },
        )

    def warm_up(self) -> None:
        # The first call pays allocation and (on a GPU) kernel selection: do it before traffic.
        noise = np.random.default_rng(0).standard_normal((self.sample_rate, self.channels)).astype(np.float32)
        self.background(noise * 0.01, self.sample_rate)

    def background(self, frames: Samples, sample_rate: int) -> Samples:
        with self._lock:
            try:
                return separate_in_groups(frames, sample_rate, self.sample_rate, self.channels, self._separate)
            except self._torch.cuda.OutOfMemoryError as exc:
                raise EngineError(
                    ErrorCode.INTERNAL, f"Demucs ran out of GPU memory: {exc}", stage=Stage.MIX, retryable=True
                ) from exc
            except RuntimeError as exc:
                if isinstance(exc, SeparationError):
                    raise
                raise SeparationError(f"Demucs failed: {type(exc).__name__}: {exc}") from exc

    def _separate(self, group: Samples) -> Samples:
        """Background of ``group`` (samples x model channels, at the model's rate)."""
        torch = self._torch
        length = len(group)
        mix = torch.from_numpy(np.ascontiguousarray(group.T))
        mono = mix.mean(0)
        mean, std = mono.mean(), mono.std() + 1e-8
        mix = (mix - mean) / std
        out = np.zeros((length, self.channels), dtype=np.float32)
        for start, end in blocks(length, self.block, self.fade):
            with torch.inference_mode():
                stems = self._apply(
                    self._model, mix[None, :, start:end], shifts=0, split=True, overlap=OVERLAP, device=self.device
                )[0]
                bed = (stems[self._background].sum(0) * std + mean).numpy().T
            out[start:end] += bed * block_weights(start, end, length, self.fade)[:, None]
        return out
