"""Artifact logging: per fragment, the input audio, transcript, translation, dubbed audio, timings.

Behind ``ARTIFACTS_ENABLED`` because it writes ~0.5 MB per fragment. Paths are built from ids the
client chose, so every component is reduced to a safe slug and the final path is checked to lie
inside ``ARTIFACTS_DIR``: a fragment id like ``../../etc/passwd`` cannot escape it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_component(value: str) -> str:
    """A filesystem-safe, collision-resistant name for a client-chosen id."""
    slug = _UNSAFE.sub("_", value).strip("._")[:64] or "id"
    if slug == value:
        return slug
    return f"{slug}-{hashlib.sha256(value.encode()).hexdigest()[:8]}"


class ArtifactWriter:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def fragment_dir(self, stream_id: str, sequence: int, fragment_id: str) -> Path:
        path = (self.root / safe_component(stream_id) / f"{sequence:08d}-{safe_component(fragment_id)}").resolve()
        if not path.is_relative_to(self.root):  # defence in depth; safe_component already prevents it
            raise ValueError("artifact path escapes the artifact directory")
        return path

    def write(
        self,
        *,
        stream_id: str,
        sequence: int,
        fragment_id: str,
        input_audio: np.ndarray,
        dubbed_audio: np.ndarray | None,
        sample_rate: int,
        record: dict[str, Any],
    ) -> Path:
        """Blocking file I/O: call from a worker thread."""
        folder = self.fragment_dir(stream_id, sequence, fragment_id)
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / "input.wav", input_audio, sample_rate, subtype="PCM_16")
        if dubbed_audio is not None and dubbed_audio.size:
            sf.write(folder / "dubbed.wav", dubbed_audio, sample_rate, subtype="PCM_16")
        (folder / "fragment.json").write_text(json.dumps(record, indent=2, ensure_ascii=False, default=str))
        return folder
