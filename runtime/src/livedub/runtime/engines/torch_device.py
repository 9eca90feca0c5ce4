"""One reading of a ``*_DEVICE`` setting (cpu, cuda, cuda:N or auto) for the torch backends.

``cuda`` without a CUDA device is a start-up error, never a silent fall-back to the CPU: a pod sized
for a GPU would otherwise serve at a fraction of the speed it was planned for.
"""

from __future__ import annotations

from typing import Any

from livedub.runtime.errors import ModelLoadError


def resolve_device(torch: Any, device: str, setting: str) -> str:
    cuda = bool(torch.cuda.is_available())
    if device == "auto":
        return "cuda" if cuda else "cpu"
    if device.startswith("cuda") and not cuda:
        raise ModelLoadError(f"{setting}={device} but torch sees no CUDA device (torch {torch.__version__})")
    if device != "cpu" and not device.startswith("cuda"):
        raise ModelLoadError(f"{setting} must be cpu, cuda or auto, not {device!r}")
    return device
