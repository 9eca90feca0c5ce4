"""``mix: "background"`` with the Demucs backend over the real Socket.IO server (``.venv-production``).

The checkpoint is the untrained HTDemucs of tests/support/demucs_tiny.py, loaded through the factory
from a path like a mounted one: this proves the wire path (init accepted, the bed under the dub, the
fragment's length and loudness), not separation quality (docs/separation.md says why).
"""

from __future__ import annotations

import base64
import dataclasses

import numpy as np
import pytest

from livedub.runtime.audio import loudness
from support.beds import music_bed
from support.data import fleurs
from support.production import require

SR = 16000


@pytest.fixture(scope="module")
def demucs(tmp_path_factory: pytest.TempPathFactory):
    require("torch")
    require("demucs")
    from livedub.runtime.config import Settings
    from livedub.runtime.engines.factory import build_separator
    from support.demucs_tiny import build_tiny_demucs

    path = build_tiny_demucs(tmp_path_factory.mktemp("demucs"))
    settings = Settings(_env_file=None, separation_engine="demucs", separation_model_path=path.parent)
    return build_separator(settings)


async def test_background_over_the_wire_with_demucs(make_server, engines, demucs, shared_data):
    with_separation = dataclasses.replace(engines, extras={**engines.extras, "separation": demucs})
    server = await make_server(engines_override=with_separation, tts_timeout_ms=60_000, mix_timeout_ms=60_000)
    client = await server.connect()
    kind, ready = await client.init(mix="background")
    assert kind == "stream:ready" and ready["mix"] == "background", ready
    speech = fleurs("fleurs-en-000")[0][: int(4.5 * SR)]
    voice = np.concatenate([np.zeros(int(1.5 * SR), np.float32), speech])
    original = (voice + music_bed(len(voice), SR, level=0.02)).astype(np.float32)
    await client.send("d0", 0, original)
    (result,) = await client.processed(1, timeout=300)
    assert result["status"] in ("success", "partial"), result
    assert result["stage_timings"]["mix_ms"] > 0, result["stage_timings"]  # the mix stage ran (separation in it)
    raw = result["dubbed_audio"]
    out = np.frombuffer(raw if isinstance(raw, bytes) else base64.b64decode(raw), dtype="<i2") / 32768.0
    assert len(out) == len(original)
    before, after = loudness.integrated_lufs(original, SR), loudness.integrated_lufs(out, SR)
    assert abs(after - before) <= 1.0, (before, after)
