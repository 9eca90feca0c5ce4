"""Load a Demucs model from a mounted path (``SEPARATION_MODEL_PATH``), never from the network.

``demucs.pretrained.get_model("htdemucs")`` looks the name up on the Hugging Face hub and then on
Meta's download server; a pod must not (no network, and a download at start-up would hide a missing
mount). So this module uses only demucs's own *file* loaders (``demucs.states.load_model``,
``demucs.hf.load_safetensors_model``) and never imports ``demucs.pretrained`` or ``huggingface_hub``.

Accepted layouts (each is what demucs itself writes):

* a ``.th`` file: demucs's package (``torch.save`` of ``klass``, ``args``, ``kwargs``, ``state``), e.g.
  htdemucs's ``955717e8-8726e21a.th`` as the ``demucs`` CLI caches it;
* a ``.safetensors`` file: demucs 4.1's hub export (class and arguments as JSON metadata);
* a directory with one bag ``*.yaml`` (``models:`` signatures, optional ``weights`` and ``segment``)
  and a ``<sig>.safetensors`` or ``<sig>-<hash>.th`` per signature: demucs's ``--repo`` layout and
  the hub repositories' (``adefossez/HTDemucs``), so a snapshot of either can be mounted as it is.

A mounted file is data, not code: ``torch.load`` runs with ``weights_only=True`` allowing only
demucs's model classes and ``fractions.Fraction`` (HTDemucs's ``segment``), and a safetensors file
may only name a class inside ``demucs``. Every failure is a :class:`ModelLoadError` naming the path.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

from livedub.runtime.errors import ModelLoadError

CHECKPOINT_SUFFIXES = (".th", ".safetensors")


def _load_th(path: Path) -> Any:
    import torch
    from demucs.demucs import Demucs
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs
    from demucs.states import load_model

    with torch.serialization.safe_globals([Demucs, HDemucs, HTDemucs, Fraction]):
        package = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(package, dict) or not {"klass", "args", "kwargs", "state"} <= package.keys():
        raise ValueError("not a demucs model package (klass, args, kwargs, state)")
    if package["state"].get("__quantized"):
        raise ValueError("a DiffQ-quantised model (e.g. mdx_q) needs diffq, which is not installed: mount htdemucs")
    return load_model(package)


def _load_safetensors(path: Path) -> Any:
    from demucs.hf import load_safetensors_model
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as file:
        klass = (file.metadata() or {}).get("klass", "")
    if not klass.startswith("demucs."):
        raise ValueError(f"metadata names class {klass!r}, not a demucs model")
    return load_safetensors_model(path)


def _load_file(path: Path) -> Any:
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    return _load_th(path)


def _bag_member(directory: Path, signature: str) -> Path:
    for candidate in [directory / f"{signature}.safetensors", directory / f"{signature}.th"]:
        if candidate.is_file():
            return candidate
    matches = sorted(directory.glob(f"{signature}-*.th"))
    if not matches:
        raise ValueError(f"no {signature}.safetensors or {signature}-*.th beside the bag file")
    return matches[0]


def _load_bag(directory: Path) -> Any:
    import yaml
    from demucs.apply import BagOfModels

    bags = sorted(directory.glob("*.yaml"))
    if len(bags) != 1:
        singles = [p for p in directory.iterdir() if p.suffix in CHECKPOINT_SUFFIXES]
        if not bags and len(singles) == 1:
            return _load_file(singles[0])
        raise ValueError(f"expected one bag *.yaml (or one checkpoint file), found {[p.name for p in bags]}")
    bag = yaml.safe_load(bags[0].read_text())
    if not isinstance(bag, dict) or not isinstance(bag.get("models"), list) or not bag["models"]:
        raise ValueError(f"{bags[0].name} has no 'models' list")
    models = [_load_file(_bag_member(directory, str(sig))) for sig in bag["models"]]
    return BagOfModels(models, bag.get("weights"), bag.get("segment"))


def load_demucs(path: Path | None) -> Any:
    """The model (or bag of models) at ``path``, in eval mode on the CPU."""
    if path is None:
        raise ModelLoadError(
            "SEPARATION_ENGINE=demucs needs SEPARATION_MODEL_PATH (a mounted htdemucs checkpoint; never downloaded)"
        )
    if not path.exists():
        raise ModelLoadError(f"SEPARATION_MODEL_PATH {path} does not exist (mount the Demucs checkpoint there)")
    try:
        model = _load_bag(path) if path.is_dir() else _load_file(path)
    except ModelLoadError:
        raise
    except Exception as exc:  # torch, pickle, safetensors and yaml each raise their own kinds
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ModelLoadError(f"cannot load a Demucs model from {path}: {type(exc).__name__}: {detail}") from exc
    sources = list(getattr(model, "sources", []))
    if "vocals" not in sources or len(sources) < 2:
        raise ModelLoadError(f"the Demucs model at {path} has sources {sources}: it needs 'vocals' and another")
    model.eval()
    return model
