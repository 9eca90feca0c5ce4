"""What the placement and stream-move tests share: a pod's HTTP answers, its metrics, the move notice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from support.data import fleurs

FRAGMENT_S = 2.0


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


def metric(text: str, name: str) -> float:
    """One sample of a Prometheus exposition, by its name with labels (``name{label="v"}``)."""
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def speech_pieces() -> tuple[list[np.ndarray], int]:
    """Real English speech in 2 s fragments (at most 8)."""
    speech = [fleurs(name) for name in ("fleurs-en-001", "fleurs-en-002", "fleurs-en-003", "fleurs-en-004")]
    rate = speech[0][1]
    audio = np.concatenate([a for a, r in speech if r == rate])
    step = int(FRAGMENT_S * rate)
    return [audio[i : i + step] for i in range(0, len(audio) - step + 1, step)][:8], rate


def moved(result: dict[str, Any]) -> bool:
    """A fragment refused because its stream is moving (to send again after reconnecting)."""
    return result.get("status") == "failed" and (result.get("error") or {}).get("code") == "STREAM_MOVE"


def move_notice(recorder: Any) -> list[dict[str, Any]]:
    """The stream-level STREAM_MOVE errors a connection got (not fragment refusals)."""
    return [e for e in recorder.of("error") if e.get("code") == "STREAM_MOVE" and not e.get("fragment_id")]


#: A pod's annotations file as the kubelet writes it before the operator marks anything.
UNMARKED = 'prometheus.io/scrape="true"\n'


def annotations_file(folder: Path) -> Path:
    """A downward-API annotations file with no operator mark yet."""
    path = folder / "annotations"
    path.write_text(UNMARKED)
    return path
