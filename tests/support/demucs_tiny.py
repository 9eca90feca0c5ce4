"""A small HTDemucs with untrained weights, written the way demucs writes checkpoints.

No Demucs weights can be fetched here (they live on the Hugging Face hub and Meta's server), so the
trained weights are the boundary these tests cannot reach: the checkpoint is built from demucs's own
``HTDemucs`` class (the htdemucs architecture, 8 instead of 48 channels and one transformer layer so
that a second of audio takes a fraction of a second on two cores) and saved by demucs's own writers:
``demucs.states.get_state`` + ``save_with_checksum`` (the ``<name>-<sha256[:8]>.th`` package of
``klass``, ``args``, ``kwargs``, ``state``, as the released ``955717e8-8726e21a.th``) and a bag
``.yaml`` naming it (demucs's ``--repo`` layout). Its stems are not music and speech: it proves the
loading, chunking, rates and channels, not the separation quality.

Needs torch and demucs (imported inside), i.e. ``.venv-production``.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

SOURCES = ("drums", "bass", "other", "vocals")
TINY = {"channels": 8, "depth": 4, "t_layers": 1, "t_heads": 2}


def build_tiny_demucs(directory: Path, *, name: str = "tinyht", seed: int = 0) -> Path:
    """Write ``<name>-<hash>.th`` and ``<name>.yaml`` into ``directory``; return the ``.th`` file."""
    import torch
    from demucs.htdemucs import HTDemucs
    from demucs.states import get_state, save_with_checksum

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = HTDemucs(sources=list(SOURCES), samplerate=44100, segment=Fraction(39, 5), **TINY)
    args, kwargs = model._init_args_kwargs
    package = {
        "klass": HTDemucs,
        "args": args,
        "kwargs": kwargs,
        "state": get_state(model, None, half=True),  # released checkpoints are stored in half precision
        "training_args": {"note": "untrained test model"},
    }
    save_with_checksum(package, directory / f"{name}.th")
    (directory / f"{name}.yaml").write_text(f"models: ['{name}']\n")
    return next(directory.glob(f"{name}-*.th"))
